#!/usr/bin/env python3
"""Reference for clipkit's training maths: loss, gradients and AdamW steps from PyTorch.

Run (offline):

    /opt/refenv/bin/python tools/make_train_fixture.py --out tests/fixtures/train

Writes a tiny random CLIP (``config.json`` + ``model.safetensors``, HF layout), one batch
(``batch.safetensors``: ``pixel_values``, ``input_ids``) and ``reference.safetensors``:

* ``loss``: transformers' ``CLIPModel(..., return_loss=True).loss`` (symmetric
  cross-entropy of the scaled cosine similarities), and ``logits_per_image``;
* ``grad.<name>``: the gradient of that loss for every parameter;
* ``masked.loss``, ``masked.logits_per_image``, ``masked.grad.<name>``: the same loss
  with the logits of the ``ALSO_TRUE`` (caption, image) pairs filled with -inf before both
  cross-entropies (captions known to be true of another image are not negatives);
* ``step2.<name>``: every parameter after two ``torch.optim.AdamW`` steps on the same batch,
  with clipkit's parameter groups (no weight decay on 1-D parameters - gains, biases, the
  class embedding, the logit scale - nor on token and position embeddings), the gradient
  clipped to a global norm of ``CLIP_NORM`` before each step, and the logit scale clamped
  to ln(100) after each step, as the CLIP paper does.

The vision tower uses quick_gelu and the text tower gelu (erf), so both activations'
backward passes are covered.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPConfig, CLIPModel  # noqa: E402

SEED = 7
LR, BETAS, EPS, WEIGHT_DECAY, CLIP_NORM = 1e-3, (0.9, 0.98), 1e-6, 0.2, 1.0
EOS, BOS, VOCAB, CONTEXT = 63, 62, 64, 16
# (caption, image) rows of the batch whose caption is also true of the other image.
ALSO_TRUE = [(0, 1), (1, 0), (2, 5), (4, 3)]


def build_model() -> CLIPModel:
    config = CLIPConfig(
        text_config=dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=CONTEXT, hidden_act="gelu",
                         layer_norm_eps=1e-5, eos_token_id=EOS, bos_token_id=BOS, pad_token_id=EOS),
        vision_config=dict(image_size=32, patch_size=8, hidden_size=48, intermediate_size=96,
                           num_hidden_layers=2, num_attention_heads=3, hidden_act="quick_gelu",
                           layer_norm_eps=1e-5),
        projection_dim=24,
        logit_scale_init_value=2.6592,
    )
    torch.manual_seed(SEED)
    model = CLIPModel(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "logit_scale":
                continue
            if p.ndim == 1 and "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))  # layer-norm gains near one
            elif p.ndim == 1:
                p.normal_(0, 0.1)
            else:
                p.normal_(0, 1.0 / math.sqrt(p[0].numel()))  # unit-variance activations
    return model


def no_decay(name: str, p: torch.Tensor) -> bool:
    return p.ndim < 2 or name.endswith("token_embedding.weight") or name.endswith("position_embedding.weight")


def make_batch(n: int = 6) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(SEED + 1)
    pixels = torch.randn(n, 3, 32, 32, generator=g)
    ids = torch.full((n, 12), EOS, dtype=torch.long)
    for i in range(n):
        length = 3 + (i * 2) % 9  # 3..11 tokens before the end token
        ids[i, 0] = BOS
        ids[i, 1:length] = torch.randint(0, BOS, (length - 1,), generator=g)
        ids[i, length] = EOS
    return {"pixel_values": pixels, "input_ids": ids}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    args.out.mkdir(parents=True, exist_ok=True)

    model = build_model()
    model.save_pretrained(str(args.out), safe_serialization=True)
    batch = make_batch()
    save_file({"pixel_values": batch["pixel_values"].contiguous(),
               "input_ids": batch["input_ids"].to(torch.int64).contiguous()}, str(args.out / "batch.safetensors"))

    out = model(**batch, return_loss=True)
    out.loss.backward()
    ref = {"loss": out.loss.detach().reshape(1), "logits_per_image": out.logits_per_image.detach()}
    for name, p in model.named_parameters():
        ref[f"grad.{name}"] = p.grad.detach().clone()

    model.zero_grad()
    logits_per_text = model(**batch).logits_per_text
    mask = torch.zeros_like(logits_per_text, dtype=torch.bool)
    for caption, image in ALSO_TRUE:
        mask[caption, image] = True
    masked = logits_per_text.masked_fill(mask, float("-inf"))
    targets = torch.arange(masked.shape[0])
    masked_loss = (torch.nn.functional.cross_entropy(masked, targets)
                   + torch.nn.functional.cross_entropy(masked.t(), targets)) / 2
    masked_loss.backward()
    ref["masked.loss"] = masked_loss.detach().reshape(1)
    ref["masked.logits_per_image"] = masked.detach().t()
    for name, p in model.named_parameters():
        ref[f"masked.grad.{name}"] = p.grad.detach().clone()

    params = dict(model.named_parameters())
    groups = [
        {"params": [p for n, p in params.items() if not no_decay(n, p)], "weight_decay": WEIGHT_DECAY},
        {"params": [p for n, p in params.items() if no_decay(n, p)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=LR, betas=BETAS, eps=EPS)
    model.zero_grad()
    for _ in range(2):
        optimizer.zero_grad()
        model(**batch, return_loss=True).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    for name, p in model.named_parameters():
        ref[f"step2.{name}"] = p.detach().clone()
    save_file({k: v.contiguous() for k, v in ref.items()}, str(args.out / "reference.safetensors"))
    print(f"loss {out.loss.item():.6f}; {len(params)} parameters; written to {args.out}")


if __name__ == "__main__":
    main()

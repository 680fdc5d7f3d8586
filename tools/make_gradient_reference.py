#!/usr/bin/env python3
"""Write the PyTorch reference for clipkit's differentiable image path and for gradients
through a frozen, loaded CLIP (crates/clipkit/tests/gradients.rs).

Run (offline; no model hub is contacted):

    python tools/make_gradient_reference.py --fixtures tests/fixtures

Writes ``reference/gradients.safetensors`` under ``--fixtures``. Everything is computed in
float64 (so the reference is the exact answer to f32 rounding) and stored as float32;
inputs come from a fixed seed.

Image operations, on ``ops.x`` (2, 3, 13, 17) in [0, 1]; for each op NAME the output
``ops.NAME.y`` and ``ops.NAME.dx`` = d sum(y * ops.NAME.probe) / d x:

* ``bilinear_down`` / ``bicubic_down``: F.interpolate to (6, 9), align_corners=False;
* ``bilinear_up`` / ``bicubic_up``: F.interpolate to (20, 31), align_corners=False;
* ``crop_bicubic``: rows 2..10, columns 3..13 (top 2, left 3, height 8, width 10), then
  bicubic to (32, 32);
* ``normalize``: (x - mean) / std with clip-a's ``image_mean`` / ``image_std``.

Gradients through clip-a (``CLIPModel.from_pretrained``, eager attention, float64):

* ``model.text_embed`` (1, E): the unit-length text embedding of ``TEXT``;
* ``model.pixels`` (2, 3, 32, 32): preprocessed pixels; ``model.image_embeds`` (2, E) their
  unit-length embeddings; ``model.pixels_grad`` = d sum(image_embeds @ text_embed.T) / d pixels;
* ``chain.x`` (2, 3, 40, 48) in [0, 1] → crop (top 4, left 6, height 30, width 36) → bicubic
  to (32, 32) → normalise → unit-length image embeddings → ``chain.loss`` = sum of their dot
  products with ``model.text_embed``; ``chain.x_grad`` = d chain.loss / d x.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import safetensors  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoTokenizer, CLIPModel  # noqa: E402

TEXT = "a red circle on a white background"
SEED = 11


def features(out) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4, an output object in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def with_grad(fn, x: torch.Tensor, probe: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.clone().requires_grad_(True)
    y = fn(x)
    (y * probe).sum().backward()
    return y.detach(), x.grad.detach()


def image_ops(gen: torch.Generator, mean: torch.Tensor, std: torch.Tensor) -> dict[str, torch.Tensor]:
    x = torch.rand((2, 3, 13, 17), generator=gen, dtype=torch.float64)
    ops = {
        "bilinear_down": lambda t: F.interpolate(t, size=(6, 9), mode="bilinear", align_corners=False),
        "bicubic_down": lambda t: F.interpolate(t, size=(6, 9), mode="bicubic", align_corners=False),
        "bilinear_up": lambda t: F.interpolate(t, size=(20, 31), mode="bilinear", align_corners=False),
        "bicubic_up": lambda t: F.interpolate(t, size=(20, 31), mode="bicubic", align_corners=False),
        "crop_bicubic": lambda t: F.interpolate(
            t[:, :, 2:10, 3:13], size=(32, 32), mode="bicubic", align_corners=False
        ),
        "normalize": lambda t: (t - mean) / std,
    }
    out = {"ops.x": x}
    for name, fn in ops.items():
        shape = fn(x).shape
        probe = torch.randn(shape, generator=gen, dtype=torch.float64)
        y, dx = with_grad(fn, x, probe)
        out[f"ops.{name}.probe"] = probe
        out[f"ops.{name}.y"] = y
        out[f"ops.{name}.dx"] = dx
    return out


def model_gradients(model_dir: Path, gen: torch.Generator, mean: torch.Tensor, std: torch.Tensor) -> dict[str, torch.Tensor]:
    model = CLIPModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    model = model.double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    text_embed = unit(features(model.get_text_features(input_ids=ids)))  # (1, E)

    def loss_of(pixels: torch.Tensor) -> torch.Tensor:
        image_embeds = unit(features(model.get_image_features(pixel_values=pixels)))
        return (image_embeds @ text_embed.T).sum()

    pixels = torch.randn((2, 3, 32, 32), generator=gen, dtype=torch.float64).requires_grad_(True)
    image_embeds = unit(features(model.get_image_features(pixel_values=pixels))).detach()
    loss_of(pixels).backward()

    x = torch.rand((2, 3, 40, 48), generator=gen, dtype=torch.float64).requires_grad_(True)
    cut = F.interpolate(x[:, :, 4:34, 6:42], size=(32, 32), mode="bicubic", align_corners=False)
    chain_loss = loss_of((cut - mean) / std)
    chain_loss.backward()
    return {
        "model.text_embed": text_embed.detach(),
        "model.pixels": pixels.detach(),
        "model.image_embeds": image_embeds,
        "model.pixels_grad": pixels.grad.detach(),
        "chain.x": x.detach(),
        "chain.loss": chain_loss.detach(),
        "chain.x_grad": x.grad.detach(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    model_dir = args.fixtures / "models" / "clip-a"
    preprocess = json.loads((model_dir / "preprocessor_config.json").read_text())
    mean = torch.tensor(preprocess["image_mean"], dtype=torch.float32).double().view(1, 3, 1, 1)
    std = torch.tensor(preprocess["image_std"], dtype=torch.float32).double().view(1, 3, 1, 1)
    gen = torch.Generator().manual_seed(SEED)
    tensors = image_ops(gen, mean, std)
    tensors.update(model_gradients(model_dir, gen, mean, std))
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    metadata = {
        "text": TEXT,
        "computed_in": "float64, stored as float32",
        "versions": json.dumps({
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
        }),
    }
    out = args.fixtures / "reference" / "gradients.safetensors"
    save_file(tensors, str(out), metadata=metadata)
    for name, t in sorted(tensors.items()):
        print(f"{name:28} {tuple(t.shape)} max|.|={t.abs().max().item():.3e}")


if __name__ == "__main__":
    main()

"""Reference data for the text-to-image transformer test (tests/imagine.rs).

Builds a tiny model of tools/imagine_torch.py with seeded random weights, a batch of random
captions and codes, and writes to tests/fixtures/imagine/:
- config.json, model.safetensors: a generator folder clipkit loads (`ImagineModel::load`);
- reference.safetensors: the inputs (`text`, `codes`), the logits of the stream without its
  last id, the three losses and the gradient of the total loss for every parameter
  (`grad.NAME`), in float64 arithmetic rounded to float32.

Run: python tools/make_imagine_reference.py
"""

import json
import pathlib

import torch
from safetensors.torch import save_file

from imagine_torch import Imagine

OUT = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "imagine"
TEXT_WEIGHT = 0.125

CONFIG = {
    "model_type": "clipkit_imagine",
    "text_vocab": 11,
    "text_length": 5,
    "pad_token_id": 10,
    "codebook_size": 13,
    "grid": [2, 3],
    "hidden_size": 16,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 32,
    "layer_norm_eps": 1e-5,
    "vq": {"path": "(none: reference fixture)", "weights_blake3": ""},
}


def main():
    torch.manual_seed(0)
    model = Imagine(CONFIG).double()
    with torch.no_grad():
        # Larger than the usual 0.02 so every layer matters to the logits.
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if "ln_" not in name else 0.1))
            if "ln_" in name and name.endswith("weight"):
                p.add_(1.0)
            p.copy_(p.float().double())  # the weights clipkit reads are float32
    b = 3
    text = torch.randint(0, CONFIG["text_vocab"], (b, CONFIG["text_length"]))
    codes = torch.randint(0, CONFIG["codebook_size"], (b, 6))
    total, image, text_loss, logits = model.loss(text, codes, TEXT_WEIGHT)
    total.backward()

    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "config.json").write_text(json.dumps(CONFIG, indent=2) + "\n")
    weights = {n: p.detach().float().contiguous() for n, p in model.named_parameters()}
    save_file(weights, OUT / "model.safetensors")
    reference = {
        "text": text.to(torch.int64),
        "codes": codes.to(torch.int64),
        "logits": logits.detach().float(),
        "loss_total": total.detach().float().reshape(1),
        "loss_image": image.detach().float().reshape(1),
        "loss_text": text_loss.detach().float().reshape(1),
        "text_weight": torch.tensor([TEXT_WEIGHT], dtype=torch.float32),
    }
    for n, p in model.named_parameters():
        reference[f"grad.{n}"] = p.grad.float().contiguous()
    save_file(reference, OUT / "reference.safetensors")
    print(f"wrote {OUT}: loss {total.item():.6f} (image {image.item():.6f}, text {text_loss.item():.6f})")


if __name__ == "__main__":
    main()

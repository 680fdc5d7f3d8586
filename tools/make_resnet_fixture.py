#!/usr/bin/env python3
"""Write the ModifiedResNet parity fixture of crates/clipkit/tests/resnet.rs.

    python tools/make_resnet_fixture.py --out tests/fixtures/resnet

open_clip's ``ModifiedResNet`` (the CLIP paper's ResNet image tower, the same module as
OpenAI's ``clip.model.ModifiedResNet``) with a small shape that still exercises every part:
``layers=[2, 1, 1, 1]`` (an unstrided block after a projecting one, and strided stages),
``width=8`` (so 256 pooled channels), ``image_size=64`` (a 2 × 2 final map), 4 heads,
output 24. The init is non-trivial: every weight drawn from N(0, 1/fan_in), batch-norm
gains, biases, running means and variances random (variances in [0.5, 1.5]), the
positional embedding N(0, 0.5), so no layer is an identity and BN folding is exercised.

Writes ``weights.safetensors`` (the tower's ``state_dict`` under ``visual.``, float32, with
``num_batches_tracked``), ``io.safetensors`` (``pixels`` (3, 3, 64, 64) and ``features``
(3, 24), computed in eval mode, float64 accumulation not used: plain float32 as open_clip
runs it) and ``config.json`` (the shape).
"""
import argparse
import json
import pathlib

import torch
from open_clip.modified_resnet import ModifiedResNet
from safetensors.torch import save_file

SHAPE = dict(layers=[2, 1, 1, 1], width=8, image_size=64, heads=4, output_dim=24)


def randomise(model):
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("positional_embedding"):
                p.copy_(torch.randn_like(p) * 0.5)
            elif p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn_like(p) / fan_in**0.5)
            elif ".bn" in name or "bn" in name.split(".")[-2] or "downsample.1" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p) if name.endswith("weight") else 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand_like(b))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, required=True)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    model = ModifiedResNet(**SHAPE).eval()
    randomise(model)
    torch.manual_seed(1)
    pixels = torch.randn(3, 3, SHAPE["image_size"], SHAPE["image_size"])
    with torch.no_grad():
        features = model(pixels)
    weights = {"visual." + k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(out / "weights.safetensors"))
    save_file({"pixels": pixels, "features": features.contiguous()}, str(out / "io.safetensors"))
    (out / "config.json").write_text(json.dumps(SHAPE, indent=2) + "\n")
    print("features std", features.std().item(), "files", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the OpenAI-layout ViT fixture of crates/clipkit/tests/openai_layout.rs.

    python tools/make_openai_layout_fixture.py --out tests/fixtures/openai

A small open_clip ``CLIP`` (ViT image tower, quick_gelu, the key names of OpenAI's
``clip.model.CLIP``, which open_clip keeps): image 32 px, patch 8, vision and text width 128
(2 heads each, as OpenAI's ``build_model`` infers width / 64), one layer each, MLP 512,
context 16, vocabulary 1000, embedding 24. Weights are random (N(0, 0.02) plus N(0, 1)
layer-norm offsets, so nothing is an identity), rounded to float16 for size; the reference
runs on those float16 values in float32.

Writes ``vit.bin`` (``torch.save`` of the float16 state dict), ``vit.pt`` (``torch.jit.trace``
of the model, float16, as ``clip.load`` archives are) and ``io.safetensors`` (``pixels`` (2,
3, 32, 32), ``ids`` (2, 16) int64 with the end token 999 as the largest id,
``image_features`` and ``text_features``: ``encode_image``/``encode_text``, unnormalised).
"""
import argparse
import pathlib

import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, required=True)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.set_num_threads(1)
    model = CLIP(
        embed_dim=24,
        vision_cfg=CLIPVisionCfg(layers=1, width=128, head_width=64, mlp_ratio=4.0, patch_size=8, image_size=32),
        text_cfg=CLIPTextCfg(context_length=16, vocab_size=1000, width=128, heads=2, layers=1),
        quick_gelu=True,
    ).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("logit_scale"):
                continue
            if ("ln" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) * (0.02 if p.dim() > 1 else 0.1))
        for p in model.parameters():
            p.copy_(p.half().float())
    pixels = torch.randn(2, 3, 32, 32)
    ids = torch.randint(1, 998, (2, 16))
    ids[:, 0] = 998
    ids[0, 9] = 999
    ids[0, 10:] = 0
    ids[1, 15] = 999
    with torch.no_grad():
        image_features = model.encode_image(pixels)
        text_features = model.encode_text(ids)
    save_file(
        {"pixels": pixels, "ids": ids, "image_features": image_features, "text_features": text_features},
        str(out / "io.safetensors"),
    )
    half = model.half()
    torch.save(half.state_dict(), out / "vit.bin")
    traced = torch.jit.trace(half, (pixels.half(), ids), check_trace=False)
    traced.save(str(out / "vit.pt"))
    print(sorted((p.name, p.stat().st_size) for p in out.iterdir()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Check that a model folder loads in transformers and embeds as clipkit embeds it.

    /opt/refenv/bin/python tools/check_hf_load.py MODEL_DIR [--clipkit target/release/clipkit]

Loads MODEL_DIR with ``CLIPModel.from_pretrained`` (no missing, unexpected or mis-shaped
weights allowed), ``CLIPProcessor.from_pretrained`` and ``CLIPTokenizer.from_pretrained``;
embeds a few generated images (several sizes, so resizing and cropping run) and captions;
runs ``clipkit embed --model MODEL_DIR ... --json`` on the same files and texts; prints the
largest absolute difference of the unit-length image and text embeddings and of the logit
scale. Exits non-zero when a difference exceeds ``--tolerance`` (default 1e-4).

Pixels on the transformers side come from ``CLIPImageProcessorPil`` (the PIL backend,
which clipkit reproduces bit for bit); in transformers 5 ``CLIPProcessor`` picks the
torchvision backend, whose resampling differs slightly, so its pixels are only reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from transformers import CLIPModel, CLIPProcessor, CLIPTokenizer  # noqa: E402
from transformers.models.clip import CLIPImageProcessorPil  # noqa: E402

CAPTIONS = [
    "a photo of two red circles",
    "a small blue square on the left",
    "three yellow stars at the top",
    "an unfamiliar zebra-like quokka",
    "",
]
IMAGE_SIZES = [(32, 32), (64, 48), (23, 57), (200, 120)]


def make_images(directory: Path) -> list[Path]:
    rng = np.random.default_rng(7)
    paths = []
    for i, (w, h) in enumerate(IMAGE_SIZES):
        im = Image.new("RGB", (w, h), tuple(int(c) for c in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
            x1, y1 = x0 + int(rng.integers(2, w // 2 + 2)), y0 + int(rng.integers(2, h // 2 + 2))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
        path = directory / f"image_{i}.png"
        im.save(path)
        paths.append(path)
    return paths


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def features(out) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4, an output object in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def config_differences(written: dict, config) -> list[str]:
    """Fields of config.json whose value transformers' CLIPConfig does not hold as written."""
    out = []
    for key, value in written.items():
        if isinstance(value, dict):
            out += [f"{key}.{d}" for d in config_differences(value, getattr(config, key))]
        elif key not in ("dtype", "architectures") and getattr(config, key, None) != value:
            out.append(f"{key}: {value!r} vs {getattr(config, key, None)!r}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("--clipkit", type=Path, default=Path("target/release/clipkit"))
    parser.add_argument("--tolerance", type=float, default=1e-4)
    args = parser.parse_args()
    torch.manual_seed(0)

    model, info = CLIPModel.from_pretrained(args.model_dir, dtype=torch.float32, output_loading_info=True)
    model.eval()
    problems = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if problems:
        sys.exit(f"transformers did not load every weight: {problems}")
    written = json.loads((args.model_dir / "config.json").read_text())
    differing = config_differences(written, model.config)
    if differing:
        sys.exit(f"CLIPConfig read config.json differently: {differing}")
    processor = CLIPProcessor.from_pretrained(args.model_dir)
    pil_processor = CLIPImageProcessorPil.from_pretrained(args.model_dir)
    tokenizer = CLIPTokenizer.from_pretrained(args.model_dir)
    context = model.config.text_config.max_position_embeddings

    with tempfile.TemporaryDirectory(prefix="check-hf-load-") as tmp:
        paths = make_images(Path(tmp))
        images = [Image.open(p).convert("RGB") for p in paths]
        pixels = pil_processor(images=images, return_tensors="pt")["pixel_values"]
        tv_pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        batch = tokenizer(CAPTIONS, padding=True, truncation=True, max_length=context, return_tensors="pt")
        with torch.no_grad():
            hf_images = unit(features(model.get_image_features(pixel_values=pixels)))
            hf_texts = unit(features(model.get_text_features(**batch)))
        cmd = [str(args.clipkit), "embed", "--model", str(args.model_dir), "--json"]
        for p in paths:
            cmd += ["--image", str(p)]
        for c in CAPTIONS:
            cmd += ["--text", c]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"clipkit failed: {' '.join(cmd)}\n{proc.stderr}")
        out = json.loads(proc.stdout)

    ck_images = torch.tensor([e["embedding"] for e in out["images"]])
    ck_texts = torch.tensor([e["embedding"] for e in out["texts"]])
    image_diff = (ck_images - hf_images).abs().max().item()
    text_diff = (ck_texts - hf_texts).abs().max().item()
    scale_diff = abs(out["logit_scale"] - model.logit_scale.exp().item())
    cfg = model.config
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print(f"{args.model_dir}: vocab {cfg.text_config.vocab_size}, context {context}, "
          f"image {cfg.vision_config.image_size}px / patch {cfg.vision_config.patch_size}, "
          f"projection {cfg.projection_dim}; every config.json field read back as written; "
          f"no missing, unexpected or mis-shaped weights")
    print(f"token ids of {CAPTIONS[3]!r}: {tokenizer(CAPTIONS[3])['input_ids']}")
    print(f"CLIPProcessor (torchvision backend) vs CLIPImageProcessorPil pixels: "
          f"max abs diff {(tv_pixels - pixels).abs().max().item():.3g} (for information)")
    print(f"image embeddings ({len(IMAGE_SIZES)} images): max abs diff {image_diff:.3g}")
    print(f"text embeddings ({len(CAPTIONS)} captions): max abs diff {text_diff:.3g}")
    print(f"logit scale: abs diff {scale_diff:.3g}")
    worst = max(image_diff, text_diff, scale_diff)
    if worst > args.tolerance:
        sys.exit(f"FAIL: {worst:.3g} > tolerance {args.tolerance:g}")
    print(f"OK (tolerance {args.tolerance:g})")


if __name__ == "__main__":
    main()

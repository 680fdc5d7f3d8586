#!/usr/bin/env python3
"""Check `clipkit models convert SRC --to hf OUT` with transformers: the folder written from
the OpenAI-layout fixture (``tests/fixtures/openai/vit.pt`` and ``vit.bin``, see
``make_openai_layout_fixture.py``) loads in ``CLIPModel.from_pretrained`` and gives open_clip's
image and text features within 1e-4, and its ``CLIPTokenizer`` (clipkit's carried
vocabulary) gives open_clip's token ids on plain strings.

    cargo build --release -p clipkit-cli
    python tools/check_openai_convert.py [--clipkit target/release/clipkit]

Exits non-zero on any mismatch.
"""
import argparse
import pathlib
import subprocess
import sys
import tempfile

import open_clip
import torch
from safetensors.torch import load_file
from transformers import CLIPModel, CLIPTokenizer

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests/fixtures/openai"
TOL = 1e-4
TEXTS = ["a photo of a cat", "A Dog, on the beach!", "two  spaces\tand tabs", "numbers 1234 and don't"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clipkit", type=pathlib.Path, default=ROOT / "target/release/clipkit")
    args = ap.parse_args()
    io = load_file(str(FIXTURES / "io.safetensors"))
    failures = []
    for src in ["vit.pt", "vit.bin"]:
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp) / "hf"
            subprocess.run([str(args.clipkit), "models", "convert", str(FIXTURES / src), "--to", "hf", str(out)], check=True)
            model = CLIPModel.from_pretrained(out).eval()
            with torch.no_grad():
                image = model.get_image_features(pixel_values=io["pixels"])
                text = model.get_text_features(input_ids=io["ids"])
            image = getattr(image, "pooler_output", image)
            text = getattr(text, "pooler_output", text)
            for what, got, want in [("image", image, io["image_features"]), ("text", text, io["text_features"])]:
                diff = (got - want).abs().max().item()
                print(f"{src}: {what} features max abs diff {diff:.2e}")
                if not diff <= TOL:
                    failures.append(f"{src} {what}: {diff}")
            hf_tok = CLIPTokenizer.from_pretrained(out)
            oc_tok = open_clip.get_tokenizer("ViT-B-32")
            for t in TEXTS:
                want = [i for i in oc_tok([t])[0].tolist() if i != 0]
                got = hf_tok(t)["input_ids"]
                if got != want:
                    failures.append(f"{src} tokens of {t!r}: {got} != {want}")
            print(f"{src}: token ids of {len(TEXTS)} strings compared with open_clip's tokenizer")
    if failures:
        print("FAILED:\n" + "\n".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()

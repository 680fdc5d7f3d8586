#!/usr/bin/env python3
"""Write a random-initialised ViT-B/32-shaped CLIP model folder for benchmarks.

Run (offline; nothing is downloaded):

    /opt/refenv/bin/python tools/make_bench_model.py --out target/bench-model

The folder (about 600 MB, float32, NOT committed) has the same layout as a real
``openai/clip-vit-base-patch32`` HuggingFace folder: ``config.json``,
``model.safetensors``, ``tokenizer.json`` + ``tokenizer_config.json`` (the real
CLIP BPE vocabulary rebuilt from open_clip's merges file) and a nested
``preprocessor_config.json`` with OpenAI's mean/std at 224 px.  Weights use
transformers' default CLIP initialisation with a fixed seed, so outputs are
meaningless but the shapes and the amount of compute match ViT-B/32.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True  # keep tools/ free of __pycache__
sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402
from transformers import CLIPModel  # noqa: E402

import make_fixtures as fx  # noqa: E402

BENCH_SPEC = {
    "text": dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                 hidden_act="quick_gelu", layer_norm_eps=1e-5, max_position_embeddings=77,
                 vocab_size=49408, eos_token_id=49407, bos_token_id=49406, pad_token_id=1),
    "vision": dict(image_size=224, patch_size=32, hidden_size=768, intermediate_size=3072,
                   num_hidden_layers=12, num_attention_heads=12, hidden_act="quick_gelu",
                   layer_norm_eps=1e-5, num_channels=3),
    "projection_dim": 512,
    "logit_scale_init_value": 2.6592,
    "tokenizer_files": "tokenizer.json",
    "preprocessor": "nested",
    "image_mean": fx.OPENAI_CLIP_MEAN,
    "image_std": fx.OPENAI_CLIP_STD,
}


def build_bench_model(seed: int) -> CLIPModel:
    """ViT-B/32 shapes, transformers' default init under a fixed seed."""
    torch.manual_seed(seed)
    return CLIPModel(fx.clip_config(BENCH_SPEC)).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("target/bench-model"))
    parser.add_argument("--seed", type=int, default=fx.SEED)
    args = parser.parse_args()
    out: Path = args.out

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    vocab, merges = fx.build_clip_vocab_and_merges()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = fx.build_hf_tokenizer(vocab, merges, Path(tmp))

    model = build_bench_model(args.seed)
    model.save_pretrained(str(out), safe_serialization=True)
    fx.save_tokenizer(tokenizer, vocab, merges, BENCH_SPEC, out)
    fx.save_preprocessor(BENCH_SPEC, out)

    n_params = sum(p.numel() for p in model.parameters())
    print(f"wrote {out} ({n_params / 1e6:.1f} M parameters): {sorted(p.name for p in out.iterdir())}")


if __name__ == "__main__":
    main()

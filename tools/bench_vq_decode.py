#!/usr/bin/env python3
"""PyTorch side of the VQ decode timing (crates/clipkit/examples/vq_decode_bench.rs): the
same VQGAN f16 architecture (diffusers VQModel, random weights), one 256 x 256 image
(16 x 16 latent): best of REPEATS for decode, and for decode + backward to the latent.

    python tools/bench_vq_decode.py --threads 2 --repeats 3
"""

import argparse
import json
import time

import torch
from diffusers import VQModel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = VQModel(
        block_out_channels=(128, 128, 256, 256, 512),
        down_block_types=("DownEncoderBlock2D",) * 4 + ("AttnDownEncoderBlock2D",),
        up_block_types=("AttnUpDecoderBlock2D",) + ("UpDecoderBlock2D",) * 4,
        layers_per_block=2, latent_channels=256, vq_embed_dim=256,
        num_vq_embeddings=16384, sample_size=256,
    ).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    latent = torch.randn(1, 256, 16, 16, requires_grad=True)
    decode_s = backward_s = float("inf")
    for _ in range(args.repeats):
        t = time.perf_counter()
        with torch.no_grad():
            model.decode(latent).sample.sum().item()
        decode_s = min(decode_s, time.perf_counter() - t)
        t = time.perf_counter()
        image = model.decode(latent).sample
        (grad,) = torch.autograd.grad(image.square().mean(), latent)
        grad.sum().item()
        backward_s = min(backward_s, time.perf_counter() - t)
    print(json.dumps({"impl": "torch", "version": torch.__version__, "threads": args.threads,
                      "decode_s": round(decode_s, 4), "decode_backward_s": round(backward_s, 4)}))


if __name__ == "__main__":
    main()

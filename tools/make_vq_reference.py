#!/usr/bin/env python3
"""Write the diffusers reference for clipkit's VQ autoencoder (crates/clipkit/tests/vq.rs),
and check a VQ folder that clipkit wrote against diffusers.

Write the fixtures (offline; diffusers from PyPI, no hub contacted):

    python tools/make_vq_reference.py write --fixtures tests/fixtures

writes under ``--fixtures/vq``:

* ``tiny/``: a diffusers ``VQModel`` folder (``VQModel.save_pretrained``) with random
  weights: two levels of 32 and 64 channels (so residual blocks change width and use
  ``conv_shortcut``), attention in the lower-resolution level of encoder and decoder
  (``AttnDownEncoderBlock2D`` / ``AttnUpDecoderBlock2D``) and in the middle blocks,
  ``layers_per_block`` 1, 4 latent channels, 4-wide codes, 24 codes;
* ``taming/``: the same weights under taming-transformers' names (written here from an
  independent inverse of clipkit's renaming table, plus a ``loss.*`` tensor that loading must
  drop) as a Lightning ``model.ckpt`` (``state_dict`` + step counters), and the matching
  taming ``model.yaml``;
* ``reference.safetensors``, computed in float64 from the float32 weights and stored as
  float32:
  ``latent`` (2, 4, 8, 8): codes of random indices plus noise (each vector's nearest code
  beats the second by a margin, so quantisation cannot flip on rounding);
  ``indices`` (2, 8, 8): the nearest codes; ``decoded`` (2, 3, 16, 16) =
  ``VQModel.decode(latent).sample``; ``probe`` (2, 3, 16, 16) random;
  ``latent_grad`` = d sum(decoded * probe) / d latent (torch autograd through the
  straight-through quantiser); ``image`` (2, 3, 16, 16) in [-1, 1] and ``encoded`` =
  ``VQModel.encode(image).latents``.

Check a folder that clipkit wrote (``clipkit train vq``):

    python tools/make_vq_reference.py check --folder DIR --images FILE.safetensors

loads DIR with ``VQModel.from_pretrained``, decodes ``latent`` of FILE (written by clipkit
beside its own ``decoded``) and prints the largest difference; exits 1 above 1e-4.

Versions used for the committed fixtures: torch 2.15, diffusers 0.42.1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from diffusers import VQModel  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402

CHANNELS = (32, 64)
LATENT = 4
CODES = 24
SIZE = 16


def tiny_model() -> VQModel:
    torch.manual_seed(13)
    model = VQModel(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D", "AttnDownEncoderBlock2D"),
        up_block_types=("AttnUpDecoderBlock2D", "UpDecoderBlock2D"),
        block_out_channels=CHANNELS,
        layers_per_block=1,
        latent_channels=LATENT,
        sample_size=SIZE,
        num_vq_embeddings=CODES,
        norm_num_groups=32,
        vq_embed_dim=LATENT,
    )
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))
            elif name == "quantize.embedding.weight":
                p.copy_(torch.randn_like(p))
    return model.eval()


def taming_name(name: str, levels: int) -> str:
    """diffusers → taming, written independently of clipkit's table."""
    parts = name.split(".")
    leaf_map = {"conv_shortcut": "nin_shortcut", "group_norm": "norm", "to_q": "q",
                "to_k": "k", "to_v": "v"}
    if parts[0] in ("quant_conv", "post_quant_conv", "quantize"):
        return name
    tower, rest = parts[0], parts[1:]
    if rest[0] == "conv_norm_out":
        return ".".join([tower, "norm_out"] + rest[1:])
    if rest[0] in ("conv_in", "conv_out"):
        return name
    if rest[0] == "mid_block":
        block = {"resnets.0": "block_1", "attentions.0": "attn_1", "resnets.1": "block_2"}[
            f"{rest[1]}.{rest[2]}"]
        leaf = rest[3:]
        head = [tower, "mid", block]
    else:
        level = int(rest[1])
        if rest[0] == "up_blocks":
            head = [tower, "up", str(levels - 1 - level)]
        else:
            head = [tower, "down", str(level)]
        kind = rest[2]
        if kind in ("downsamplers", "upsamplers"):
            head.append("downsample" if kind == "downsamplers" else "upsample")
            leaf = rest[4:]
        else:
            head += ["block" if kind == "resnets" else "attn", rest[3]]
            leaf = rest[4:]
    if leaf[:2] == ["to_out", "0"]:
        leaf = ["proj_out"] + leaf[2:]
    leaf = [leaf_map.get(leaf[0], leaf[0])] + leaf[1:]
    return ".".join(head + leaf)


TAMING_YAML = """model:
  base_learning_rate: 4.5e-06
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: {latent}
    n_embed: {codes}
    monitor: val/rec_loss
    ddconfig:
      double_z: false
      z_channels: {latent}
      resolution: {size}
      in_channels: 3
      out_ch: 3
      ch: 32
      ch_mult: [1, 2]
      num_res_blocks: 1
      attn_resolutions: [{attn}]
      dropout: 0.0
    lossconfig:
      target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params:
        disc_start: 10000
"""


def write(fixtures: Path) -> None:
    out = fixtures / "vq"
    model = tiny_model()
    model.save_pretrained(out / "tiny", safe_serialization=True)

    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    taming = {}
    for k, v in state.items():
        t = taming_name(k, len(CHANNELS))
        if ".attn" in t and v.dim() == 2 and t.endswith("weight") and not t.split(".")[-2] == "norm":
            v = v[:, :, None, None].contiguous()
        taming[t] = v
    taming["loss.discriminator.main.0.weight"] = torch.randn(8, 3, 4, 4)
    (out / "taming").mkdir(parents=True, exist_ok=True)
    # A PyTorch Lightning checkpoint as taming's trainer writes it: the weights under
    # "state_dict", beside training state that loading ignores.
    torch.save({"state_dict": taming, "global_step": 0, "epoch": 0}, out / "taming" / "model.ckpt")
    (out / "taming" / "model.yaml").write_text(
        TAMING_YAML.format(latent=LATENT, codes=CODES, size=SIZE, attn=SIZE // 2))

    model = model.double()
    g = torch.Generator().manual_seed(14)
    codebook = model.quantize.embedding.weight.detach()
    idx = torch.randint(0, CODES, (2, SIZE // 2, SIZE // 2), generator=g)
    latent = codebook[idx].permute(0, 3, 1, 2) + 0.2 * torch.randn(
        2, LATENT, SIZE // 2, SIZE // 2, generator=g, dtype=torch.float64)
    latent = latent.float().double()
    flat = latent.permute(0, 2, 3, 1).reshape(-1, LATENT)
    dist = torch.cdist(flat, codebook)
    two = dist.topk(2, largest=False).values
    margin = (two[:, 1] - two[:, 0]).min().item()
    assert margin > 1e-3, f"quantisation margin {margin} too small; change the seed"
    nearest = dist.argmin(1).reshape(2, SIZE // 2, SIZE // 2)

    latent.requires_grad_(True)
    decoded = model.decode(latent).sample
    probe = torch.randn(decoded.shape, generator=g, dtype=torch.float64)
    (decoded * probe).sum().backward()
    image = (torch.rand(2, 3, SIZE, SIZE, generator=g, dtype=torch.float64) * 2 - 1).float().double()
    with torch.no_grad():
        encoded = model.encode(image).latents
    ref = {
        "latent": latent.detach(),
        "indices": nearest.to(torch.int64),
        "decoded": decoded.detach(),
        "probe": probe,
        "latent_grad": latent.grad,
        "image": image,
        "encoded": encoded,
    }
    save_file({k: (v.float() if v.is_floating_point() else v).contiguous() for k, v in ref.items()},
              out / "reference.safetensors")
    print(f"wrote {out}; quantisation margin {margin:.4f}; "
          f"|decoded| max {decoded.abs().max().item():.3f}, "
          f"|grad| max {latent.grad.abs().max().item():.3f}")


def check(folder: Path, images: Path) -> int:
    model = VQModel.from_pretrained(folder).eval().double()
    data = load_file(images)
    with torch.no_grad():
        decoded = model.decode(data["latent"].double()).sample
    diff = (decoded - data["decoded"].double()).abs().max().item()
    ok = diff <= 1e-4 and torch.isfinite(decoded).all().item()
    print(json.dumps({"folder": str(folder), "max_abs_diff": diff, "ok": ok}))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("write")
    w.add_argument("--fixtures", type=Path, required=True)
    c = sub.add_parser("check")
    c.add_argument("--folder", type=Path, required=True)
    c.add_argument("--images", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "write":
        write(args.fixtures)
        return 0
    return check(args.folder, args.images)


if __name__ == "__main__":
    sys.exit(main())

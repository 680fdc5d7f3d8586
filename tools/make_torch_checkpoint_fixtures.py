#!/usr/bin/env python3
"""Write the PyTorch checkpoint fixtures of clipkit's pickle/TorchScript reader test
(crates/clipkit/tests/torch_checkpoint.rs).

    python tools/make_torch_checkpoint_fixtures.py --out tests/fixtures/torch

Writes (a few KB in all):

* ``state_dict.bin``  -- ``torch.save(state_dict)`` (zip format) with float32, float16,
  bfloat16, int64 and bool tensors, a transposed (non-contiguous) view and two views of one
  storage.
* ``legacy.bin``      -- the same dict in the pre-1.6 format (``_use_new_zipfile_serialization=False``).
* ``traced.pt``       -- ``torch.jit.trace`` of a small nested module (a TorchScript archive as
  ``clip.load`` downloads them).
* ``lightning.ckpt``  -- ``{"state_dict": ..., "hyper_parameters": argparse.Namespace(...)}``:
  the tensors are readable under ``state_dict``, the whole file is refused (it names
  ``argparse.Namespace``).
* ``evil.bin``        -- a pickle whose loading would call ``os.system`` (never run by clipkit).
* ``truncated.pt``    -- the first half of ``traced.pt``.
* ``expected.safetensors`` -- every tensor the reader must return, by name, in float32/int64
  (``sd.NAME`` for state_dict/legacy/lightning, ``ts.NAME`` for traced.pt).
"""
import argparse
import os
import pathlib
from collections import OrderedDict

import torch
from safetensors.torch import save_file


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 3, padding=1)
        self.norm = torch.nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.conv(x))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.blocks = torch.nn.Sequential(Block(), Block())
        self.blocks[1].conv = torch.nn.Conv2d(3, 3, 1)
        self.proj = torch.nn.Parameter(torch.randn(3, 4))

    def forward(self, x):
        return self.blocks(x).mean((2, 3)) @ self.proj


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this pickle ran code",))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, required=True)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)

    base = torch.randn(4, 6)
    storage_shared = torch.arange(10, dtype=torch.float32)
    sd = OrderedDict()
    sd["linear.weight"] = torch.randn(2, 3)
    sd["linear.bias"] = torch.randn(2).half()
    sd["transposed"] = base.t()  # stride (1, 6)
    sd["bf16"] = torch.randn(5).bfloat16()
    sd["position_ids"] = torch.arange(7).unsqueeze(0)
    sd["mask"] = torch.tensor([True, False, True])
    sd["shared.a"] = storage_shared[2:5]
    sd["shared.b"] = storage_shared.view(2, 5)[:, 1:3]
    sd["scalar"] = torch.tensor(3.5)
    torch.save(sd, out / "state_dict.bin")
    torch.save(sd, out / "legacy.bin", _use_new_zipfile_serialization=False)
    torch.save(
        {"state_dict": sd, "epoch": 3, "hyper_parameters": argparse.Namespace(lr=0.1)},
        out / "lightning.ckpt",
    )
    torch.save({"weights": sd["linear.weight"], "payload": Evil()}, out / "evil.bin")

    net = Net().eval()
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))
        for b in net.buffers():
            if b.dtype.is_floating_point:
                b.copy_(torch.rand_like(b) + 0.5)
    traced = torch.jit.trace(net, torch.randn(1, 2, 5, 5))
    traced.save(str(out / "traced.pt"))
    data = (out / "traced.pt").read_bytes()
    (out / "truncated.pt").write_bytes(data[: len(data) // 2])

    expected = {}
    for k, v in sd.items():
        v = v.contiguous()
        expected["sd." + k] = v.to(torch.uint8) if v.dtype == torch.bool else v
    for k, v in net.state_dict().items():
        expected["ts." + k] = v.contiguous()
    save_file({k: v.clone() for k, v in expected.items()}, str(out / "expected.safetensors"))
    print("wrote", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Write the PyTorch reference for clipkit's CLIP-guided generation
(crates/clipkit/tests/generate.rs).

Run (offline; no model hub is contacted):

    python tools/make_generate_reference.py --fixtures tests/fixtures

Writes ``reference/generate.safetensors`` under ``--fixtures``. Everything is computed in
float64 and stored as float32; inputs come from a fixed seed. Written independently of the
Rust code: the FFT is ``torch.fft.irfft2``, resizing is ``F.interpolate``.

* ``fourier.*``: the Fourier drawer. ``spectrum`` (2, 3, 12, 9) (real, imaginary) for a
  12 × 16 image, amplitude exponent 1: ``image`` = sigmoid(colour(irfft2(spectrum ·
  scale, norm="ortho") / 4)) and ``grad`` = d sum(image · probe) / d spectrum. Also an odd
  width: ``fourier_odd.*`` for 10 × 15 (spectrum (2, 3, 10, 8)).
* ``sphere.*``: ``a`` (5, 7) and ``b`` (1, 7) unit rows; ``dists`` = 2·arcsin(|a−b|/2)²;
  ``loss`` = -0.5 · mean(max(-dists, -0.9)) (weight -0.5, stop -0.9) and ``grad`` = d loss / d a.
* ``tv.*``: ``x`` (2, 3, 7, 9), ``value`` and ``grad`` of the total variation (mean
  squared vertical differences + mean squared horizontal differences).
* ``cut.*``: one cut-out pipeline on ``x`` (1, 3, 40, 48) with the fixed cut-outs ``params``
  (K, 8) = (top, left, height, width, flip, contrast, brightness, noise factor) and
  ``noise`` (K, 3, 32, 32): crop → area (crop ≥ 32 both ways) or bilinear resize to 32 →
  optional left-right flip → (v − 0.5) · contrast + 0.5 + brightness → + factor · noise;
  ``y`` and ``grad`` = d sum(y · probe) / d x.
* ``steps.*``: pixel drawer on a 40 × 48 image, ``logits0`` (1, 3, 40, 48), guided by clip-a
  towards ``PROMPTS``, total-variation weight ``TV``, Adam (torch.optim.Adam, lr ``LR``,
  defaults otherwise) for ``STEPS`` steps; step s uses the cut-outs ``params.s`` and noise
  ``noise.s``. ``loss`` (STEPS) is each step's loss before its update; ``logits`` the final
  logits.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import AutoTokenizer, CLIPModel  # noqa: E402

SEED = 13
PROMPTS = [("a red circle", 1.0, float("-inf")), ("a blue square", -0.5, float("-inf"))]
TV = 0.1
LR = 0.05
STEPS = 3
SIDE = 32  # clip-a's input side
COLOR_SQRT = torch.tensor(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], dtype=torch.float64
)


def features(out) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4, an output object in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def fourier_render(spectrum: torch.Tensor, h: int, w: int, decay: float) -> torch.Tensor:
    fy = torch.from_numpy(np.fft.fftfreq(h))[:, None]
    fx = torch.from_numpy(np.fft.rfftfreq(w))[None, :]
    freqs = (fx * fx + fy * fy).sqrt()
    scale = 1.0 / freqs.clamp(min=1.0 / max(h, w)) ** decay
    complex_spectrum = torch.complex(spectrum[0] * scale, spectrum[1] * scale)
    plane = torch.fft.irfft2(complex_spectrum, s=(h, w), norm="ortho") / 4.0  # (3, H, W)
    color = COLOR_SQRT / COLOR_SQRT.norm(dim=0).max()
    rgb = torch.einsum("cj,jhw->chw", color, plane)
    return torch.sigmoid(rgb)[None]


def fourier_case(gen: torch.Generator, prefix: str, h: int, w: int) -> dict[str, torch.Tensor]:
    spectrum = torch.randn((2, 3, h, w // 2 + 1), generator=gen, dtype=torch.float64)
    spectrum = spectrum.requires_grad_(True)
    image = fourier_render(spectrum, h, w, 1.0)
    probe = torch.randn(image.shape, generator=gen, dtype=torch.float64)
    (image * probe).sum().backward()
    return {
        f"{prefix}.spectrum": spectrum.detach(),
        f"{prefix}.image": image.detach(),
        f"{prefix}.probe": probe,
        f"{prefix}.grad": spectrum.grad.detach(),
    }


def spherical(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).norm(dim=-1).div(2).arcsin().pow(2).mul(2)


def prompt_loss(dists: torch.Tensor, weight: float, stop: float) -> torch.Tensor:
    signed = dists * (1.0 if weight > 0 else -1.0)
    return abs(weight) * torch.maximum(signed, torch.tensor(stop, dtype=dists.dtype)).mean()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    dy = x[:, :, 1:, :] - x[:, :, :-1, :]
    dx = x[:, :, :, 1:] - x[:, :, :, :-1]
    return dy.pow(2).mean() + dx.pow(2).mean()


def cutouts(x: torch.Tensor, params: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    views = []
    for top, left, h, w, flip, contrast, brightness, _ in params.tolist():
        top, left, h, w = int(top), int(left), int(h), int(w)
        crop = x[:, :, top : top + h, left : left + w]
        if h >= SIDE and w >= SIDE:
            view = F.interpolate(crop, size=(SIDE, SIDE), mode="area")
        else:
            view = F.interpolate(crop, size=(SIDE, SIDE), mode="bilinear", align_corners=False)
        if flip:
            view = view.flip(3)
        views.append((view - 0.5) * contrast + 0.5 + brightness)
    factors = params[:, 7].view(-1, 1, 1, 1)
    return torch.cat(views) + factors * noise


def random_params(gen: torch.Generator, k: int, h: int, w: int) -> torch.Tensor:
    rows = []
    for i in range(k):
        side_h = int(torch.randint(12, h + 1, (1,), generator=gen))
        side_w = int(torch.randint(12, w + 1, (1,), generator=gen))
        if i == 0:  # one cut-out shrunk by area averaging, whatever the draw
            side_h, side_w = max(side_h, SIDE + 2), max(side_w, SIDE + 4)
        top = int(torch.randint(0, h - side_h + 1, (1,), generator=gen))
        left = int(torch.randint(0, w - side_w + 1, (1,), generator=gen))
        flip = float(i % 2)
        u = torch.rand(3, generator=gen, dtype=torch.float64).tolist()
        rows.append([top, left, side_h, side_w, flip, 1 + 0.2 * (u[0] - 0.5), 0.1 * (u[1] - 0.5), 0.1 * u[2]])
    return torch.tensor(rows, dtype=torch.float64)


def cut_case(gen: torch.Generator) -> dict[str, torch.Tensor]:
    x = torch.rand((1, 3, 40, 48), generator=gen, dtype=torch.float64).requires_grad_(True)
    params = random_params(gen, 4, 40, 48)
    noise = torch.randn((4, 3, SIDE, SIDE), generator=gen, dtype=torch.float64)
    y = cutouts(x, params, noise)
    probe = torch.randn(y.shape, generator=gen, dtype=torch.float64)
    (y * probe).sum().backward()
    return {"cut.x": x.detach(), "cut.params": params, "cut.noise": noise, "cut.y": y.detach(),
            "cut.probe": probe, "cut.grad": x.grad.detach()}


def steps_case(gen: torch.Generator, model_dir: Path) -> dict[str, torch.Tensor]:
    model = CLIPModel.from_pretrained(str(model_dir), dtype=torch.float32, attn_implementation="eager")
    model = model.double().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    preprocess = json.loads((model_dir / "preprocessor_config.json").read_text())
    mean = torch.tensor(preprocess["image_mean"], dtype=torch.float32).double().view(1, 3, 1, 1)
    std = torch.tensor(preprocess["image_std"], dtype=torch.float32).double().view(1, 3, 1, 1)
    texts = []
    for text, _, _ in PROMPTS:
        ids = torch.tensor([tokenizer(text)["input_ids"]])
        texts.append(unit(features(model.get_text_features(input_ids=ids))))
    logits0 = 0.5 * torch.randn((1, 3, 40, 48), generator=gen, dtype=torch.float64)
    logits = logits0.clone().requires_grad_(True)
    adam = torch.optim.Adam([logits], lr=LR)
    out = {"steps.logits0": logits0}
    losses = []
    for s in range(STEPS):
        params = random_params(gen, 3, 40, 48)
        noise = torch.randn((3, 3, SIDE, SIDE), generator=gen, dtype=torch.float64)
        out[f"steps.params.{s}"] = params
        out[f"steps.noise.{s}"] = noise
        adam.zero_grad()
        image = torch.sigmoid(logits)
        views = cutouts(image, params, noise)
        embeds = unit(features(model.get_image_features(pixel_values=(views - mean) / std)))
        loss = sum(prompt_loss(spherical(embeds, t), w, stop) for (_, w, stop), t in zip(PROMPTS, texts))
        loss = loss + TV * total_variation(image)
        loss.backward()
        adam.step()
        losses.append(loss.item())
    out["steps.loss"] = torch.tensor(losses, dtype=torch.float64)
    out["steps.logits"] = logits.detach()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(SEED)
    tensors = {}
    tensors.update(fourier_case(gen, "fourier", 12, 16))
    tensors.update(fourier_case(gen, "fourier_odd", 10, 15))
    a = unit(torch.randn((5, 7), generator=gen, dtype=torch.float64)).requires_grad_(True)
    b = unit(torch.randn((1, 7), generator=gen, dtype=torch.float64))
    dists = spherical(a, b)
    loss = prompt_loss(dists, -0.5, -0.9)
    loss.backward()
    tensors.update({"sphere.a": a.detach(), "sphere.b": b, "sphere.dists": dists.detach(),
                    "sphere.loss": loss.detach().reshape(()), "sphere.grad": a.grad.detach()})
    x = torch.rand((2, 3, 7, 9), generator=gen, dtype=torch.float64).requires_grad_(True)
    tv = total_variation(x)
    tv.backward()
    tensors.update({"tv.x": x.detach(), "tv.value": tv.detach().reshape(()), "tv.grad": x.grad.detach()})
    tensors.update(cut_case(gen))
    tensors.update(steps_case(gen, args.fixtures / "models" / "clip-a"))
    tensors = {k: v.to(torch.float32).contiguous() for k, v in tensors.items()}
    metadata = {
        "prompts": json.dumps(PROMPTS),
        "tv": str(TV),
        "lr": str(LR),
        "computed_in": "float64, stored as float32",
        "versions": json.dumps({
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
        }),
    }
    out = args.fixtures / "reference" / "generate.safetensors"
    save_file(tensors, str(out), metadata=metadata)
    for name, t in sorted(tensors.items()):
        print(f"{name:28} {tuple(t.shape)} max|.|={t.abs().max().item():.3e}")


if __name__ == "__main__":
    main()

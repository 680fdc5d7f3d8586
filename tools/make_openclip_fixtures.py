#!/usr/bin/env python3
"""Write the open_clip-folder and OpenAI-checkpoint fixtures of crates/clipkit/tests/openclip.rs.

    pip install open_clip_torch clip-anytorch
    python tools/make_openclip_fixtures.py --out tests/fixtures/openclip

Small random-initialised models, one directory each, in the layouts users have:

* ``vit_safetensors/``, ``vit_bin/``: an open_clip ``CLIP`` with a ViT image tower (exact
  GELU, ``quick_gelu`` false; ``head_width`` 8, ``mlp_ratio`` 2.5) as open_clip's
  ``push_to_hf_hub`` writes it: ``open_clip_config.json`` (``model_cfg`` +
  ``preprocess_cfg``: squash resize, bilinear, its own mean/std) and
  ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin`` (``torch.save`` of the
  state dict).
* ``resnet_safetensors/``, ``resnet_bin/``: the same with a ModifiedResNet tower
  (``layers`` [2, 1, 1, 1], width 4, 64 px, 4 heads, quick GELU; preprocessing ``shortest``,
  bicubic, OpenAI's mean/std).
* ``vit.pt``, ``resnet.pt``: OpenAI's ``clip.model.CLIP`` (from the clip-anytorch package,
  its ``model.py`` loaded directly since the package's ``__init__`` needs the removed
  ``pkg_resources``) traced with ``torch.jit.trace`` and saved in float16, as ``clip.load``'s
  archives are. ``build_model`` infers heads as width / 64, so these text towers are 64
  wide; to keep the files small their vocabulary is 1000 ids (end token 999) and their text
  is compared through token ids, not the tokenizer.

Every open_clip text tower keeps CLIP's 49408-token vocabulary (the carried tokenizer's ids
must fit), 4 wide, so the files stay a few hundred KB. Weights are drawn N(0, 1/fan_in),
norm gains 1 + N(0, 0.1), biases and norm offsets N(0, 0.1), embeddings N(0, 0.5), batch-norm
statistics random; then rounded to float16 (the stored precision), and the references are
computed from those rounded values in float32.

Each directory gets ``reference.safetensors``: ``pixels`` (2, 3, S, S) and
``image_embeds`` (unit length), ``text_embeds`` and ``token_ids`` (open_clip's tokenizer,
padded with 0 to the context length) for the texts in ``texts.json``, and ``resized_embeds``
of ``tests/fixtures/images/wide_rgb.png`` (97 × 61) preprocessed by open_clip's own
transform from PIL. For the ``.pt`` files, ``vit_pt.safetensors`` / ``resnet_pt.safetensors``
hold ``pixels``, ``image_embeds``, ``ids`` (2, 16) and ``text_embeds``, and
``resized_embeds`` through OpenAI's transform (bicubic short side, centre crop, OpenAI
mean/std).
"""
import argparse
import importlib.util
import json
import pathlib

import open_clip
import torch
from open_clip.transform import image_transform
from PIL import Image
from safetensors.torch import save_file

ROOT = pathlib.Path(__file__).resolve().parent.parent
IMAGE = ROOT / "tests/fixtures/images/wide_rgb.png"
TEXTS = [
    "a photo of a cat",
    "Hello, World! 123 tokens",
    "a diagram of caf\u00e9 emoji \U0001f642 and \u00fcn\u00efcode",
    " ".join(["truncated"] * 90),
    "",
]
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

TEXT_CFG = dict(context_length=77, vocab_size=49408, width=4, heads=2, layers=2, mlp_ratio=2.0)
OPEN_CLIP_MODELS = {
    "vit": dict(
        model_cfg=dict(
            embed_dim=8,
            quick_gelu=False,
            vision_cfg=dict(image_size=32, layers=2, width=16, head_width=8, mlp_ratio=2.5, patch_size=8),
            text_cfg=TEXT_CFG,
        ),
        preprocess_cfg=dict(
            mean=[0.5, 0.4, 0.3], std=[0.2, 0.25, 0.3], interpolation="bilinear", resize_mode="squash"
        ),
    ),
    "resnet": dict(
        model_cfg=dict(
            embed_dim=8,
            quick_gelu=True,
            vision_cfg=dict(image_size=64, layers=[2, 1, 1, 1], width=4, head_width=32),
            text_cfg=TEXT_CFG,
        ),
        preprocess_cfg=dict(
            mean=list(OPENAI_MEAN), std=list(OPENAI_STD), interpolation="bicubic", resize_mode="shortest"
        ),
    ),
}


def randomise(model, seed):
    """A non-trivial init, rounded to float16 values."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            last = name.split(".")[-1]
            if "embedding" in name or name.endswith("class_embedding"):
                p.copy_(0.5 * torch.randn_like(p))
            elif name.endswith("logit_scale"):
                p.fill_(2.3)
            elif p.dim() > 1:
                p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
            elif last == "weight":
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.1 * torch.randn_like(p))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(0.2 * torch.randn_like(b))
            elif name.endswith("running_var"):
                b.copy_(0.5 + torch.rand_like(b))
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                t.copy_(t.half().float())


def unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def write_open_clip(out, name, spec, seed):
    model = open_clip.model.CLIP(**spec["model_cfg"]).eval()
    randomise(model, seed)
    size = spec["model_cfg"]["vision_cfg"]["image_size"]
    pre = spec["preprocess_cfg"]
    transform = image_transform(
        size, is_train=False, mean=pre["mean"], std=pre["std"],
        resize_mode=pre["resize_mode"], interpolation=pre["interpolation"],
    )
    tokenizer = open_clip.get_tokenizer("ViT-B-32")  # CLIP's SimpleTokenizer, context 77
    torch.manual_seed(seed + 100)
    pixels = torch.randn(2, 3, size, size)
    tokens = tokenizer(TEXTS)
    with torch.no_grad():
        reference = {
            "pixels": pixels,
            "image_embeds": unit(model.encode_image(pixels)),
            "token_ids": tokens.to(torch.int64),
            "text_embeds": unit(model.encode_text(tokens)),
            "resized_embeds": unit(model.encode_image(transform(Image.open(IMAGE)).unsqueeze(0))),
        }
    state = {k: v.half().contiguous() for k, v in model.state_dict().items()}
    for fmt in ["safetensors", "bin"]:
        d = out / f"{name}_{fmt}"
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
        (d / "open_clip_config.json").write_text(json.dumps(spec, indent=2) + "\n")
        if fmt == "safetensors":
            save_file(state, str(d / "open_clip_model.safetensors"))
        else:
            torch.save(state, d / "open_clip_pytorch_model.bin")
        save_file({k: v.contiguous() for k, v in reference.items()}, str(d / "reference.safetensors"))
    print(name, "image std", reference["image_embeds"].std().item(), "text std", reference["text_embeds"].std().item())


def load_openai_clip_class():
    spec = importlib.util.find_spec("clip")
    path = pathlib.Path(spec.submodule_search_locations[0]) / "model.py"
    module_spec = importlib.util.spec_from_file_location("openai_clip_model", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.CLIP


def write_openai(out, name, vision, seed):
    CLIP = load_openai_clip_class()
    model = CLIP(embed_dim=8, context_length=16, vocab_size=1000, transformer_width=64,
                 transformer_heads=1, transformer_layers=1, **vision).eval()
    randomise(model, seed)
    size = vision["image_resolution"]
    torch.manual_seed(seed + 100)
    pixels = torch.randn(2, 3, size, size)
    ids = torch.randint(1, 998, (2, 16))
    ids[:, 0] = 998
    ids[0, 9], ids[0, 10:] = 999, 0
    ids[1, 15] = 999
    transform = image_transform(size, is_train=False, mean=OPENAI_MEAN, std=OPENAI_STD,
                                resize_mode="shortest", interpolation="bicubic")
    with torch.no_grad():
        reference = {
            "pixels": pixels,
            "image_embeds": unit(model.encode_image(pixels)),
            "ids": ids,
            "text_embeds": unit(model.encode_text(ids)),
            "resized_embeds": unit(model.encode_image(transform(Image.open(IMAGE)).unsqueeze(0))),
        }
        traced = torch.jit.trace(model, (pixels, ids))
    traced = traced.half()
    torch.jit.save(traced, str(out / f"{name}.pt"))
    save_file({k: v.contiguous() for k, v in reference.items()}, str(out / f"{name}_pt.safetensors"))
    print(name, ".pt image std", reference["image_embeds"].std().item())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=pathlib.Path, required=True)
    out = ap.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    for seed, (name, spec) in enumerate(OPEN_CLIP_MODELS.items()):
        write_open_clip(out, name, spec, seed)
    (out / "texts.json").write_text(json.dumps(TEXTS, ensure_ascii=False, indent=2) + "\n")
    write_openai(out, "vit", dict(image_resolution=32, vision_layers=1, vision_width=64, vision_patch_size=8), 10)
    write_openai(out, "resnet", dict(image_resolution=64, vision_layers=(1, 1, 1, 1), vision_width=4,
                                     vision_patch_size=None), 11)
    versions = {"torch": torch.__version__, "open_clip": open_clip.__version__}
    (out / "versions.json").write_text(json.dumps(versions, indent=2) + "\n")
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{p.stat().st_size:>9} {p.relative_to(out)}")


if __name__ == "__main__":
    main()

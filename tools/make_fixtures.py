#!/usr/bin/env python3
"""Generate the reference fixtures used by clipkit's Rust tests.

Run (offline; no model hub is contacted):

    /opt/refenv/bin/pip install -r tools/requirements.txt
    /opt/refenv/bin/python tools/make_fixtures.py --out tests/fixtures

Everything is deterministic (fixed seeds, single-threaded torch), so re-running
the script reproduces byte-identical files for the same library versions.

What it writes under ``--out``:

* ``models/clip-a/``  -- tiny random CLIP, float32, single ``model.safetensors``,
  fast tokenizer (``tokenizer.json`` only), nested ``preprocessor_config.json``.
* ``models/clip-b/``  -- tiny random CLIP with every option changed: float16
  weights in 2+ shards (``model.safetensors.index.json``), legacy
  ``eos_token_id = 2`` (argmax pooling), gelu variants, ``vocab.json`` +
  ``merges.txt`` only, legacy flat ``preprocessor_config.json``.
* ``images/``         -- small synthetic test images (several formats/modes).
* ``reference/clip-{a,b}.safetensors`` + ``.json`` -- pixel values, image/text
  embeddings, logits, zero-shot probabilities and hidden states computed with
  transformers (models loaded back from disk in float32).
* ``reference/decoded_images.safetensors`` -- every test image as the RGB uint8
  array transformers' PIL processor sees after ``convert_to_rgb``.
* ``reference/tokenizer_cases.json`` -- 250+ strings with their token ids.

The CLIP BPE vocabulary is rebuilt offline from open_clip's packaged
``bpe_simple_vocab_16e6.txt.gz`` exactly as OpenAI's ``simple_tokenizer.py``
does it.
"""

from __future__ import annotations

import argparse
import gzip
import html
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import PIL  # noqa: E402
import regex  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer  # noqa: E402
from transformers.models.clip import CLIPImageProcessorPil  # noqa: E402
from transformers.image_transforms import convert_to_rgb  # noqa: E402

try:
    import ftfy
except ImportError:  # pragma: no cover - open_clip_torch depends on ftfy
    ftfy = None

SEED = 20240611
CONTEXT_LENGTH = 77
SOT, EOT = "<|startoftext|>", "<|endoftext|>"
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

# The two fixture models differ in every option the Rust loader has to handle.
MODEL_SPECS = {
    "clip-a": {
        "prefix": "a",
        "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                     hidden_act="quick_gelu", layer_norm_eps=1e-5, max_position_embeddings=77,
                     vocab_size=49408, eos_token_id=49407, bos_token_id=49406, pad_token_id=1),
        "vision": dict(image_size=32, patch_size=8, hidden_size=48, intermediate_size=96,
                       num_hidden_layers=2, num_attention_heads=4, hidden_act="quick_gelu",
                       layer_norm_eps=1e-5, num_channels=3),
        "projection_dim": 24,
        "logit_scale_init_value": 2.6592,
        "storage_dtype": "float32",
        "max_shard_size": None,
        "tokenizer_files": "tokenizer.json",
        "preprocessor": "nested",
        "image_mean": OPENAI_CLIP_MEAN,
        "image_std": OPENAI_CLIP_STD,
    },
    "clip-b": {
        "prefix": "b",
        "text": dict(hidden_size=40, intermediate_size=72, num_hidden_layers=3, num_attention_heads=5,
                     hidden_act="gelu_new", layer_norm_eps=1e-6, max_position_embeddings=77,
                     vocab_size=49408, eos_token_id=2, bos_token_id=0, pad_token_id=1),
        "vision": dict(image_size=48, patch_size=16, hidden_size=36, intermediate_size=80,
                       num_hidden_layers=3, num_attention_heads=3, hidden_act="gelu",
                       layer_norm_eps=1e-6, num_channels=3),
        "projection_dim": 20,
        "logit_scale_init_value": 3.2,
        "storage_dtype": "float16",
        "max_shard_size": "100KB",
        "tokenizer_files": "vocab.json+merges.txt",
        "preprocessor": "legacy-flat",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.5, 0.5, 0.5],
    },
}

REFERENCE_TEXTS = [
    "a photo of a cat",
    "",
    "A Photo Of A DOG, running   in the park!",
    "-leading dash",
    "I ❤️ my 🐱 and 👨‍👩‍👧‍👦 🇯🇵",
    "一只猫的照片，東京タワー",
    "it's 2024 & we don't panic: 3.14159 + 42 = 45.14159?",
    " ".join(f"word{i} number {i}, and more" for i in range(40)),  # > 77 tokens
]
ZEROSHOT_LABELS = ["cat", "dog", "car", "tree", "house"]
ZEROSHOT_TEMPLATES = ["a photo of a {}.", "a drawing of a {}.", "itap of a {}."]

# Init scheme (see reinit_parameters): chosen so activations are O(1).
LINEAR_GAIN = 1.5
EMBEDDING_STD = 0.5
LAYERNORM_WEIGHT_STD = 0.2
BIAS_STD = 0.1


# --------------------------------------------------------------------------------------
# Tokenizer vocabulary
# --------------------------------------------------------------------------------------

def bytes_to_unicode() -> dict[int, str]:
    """OpenAI/GPT-2 reversible byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(2**8):
        if b not in bs:
            bs.append(b)
            cs.append(2**8 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def bpe_merges_source() -> Path:
    """Path of open_clip's packaged OpenAI BPE merges file."""
    import open_clip.tokenizer

    return Path(open_clip.tokenizer.default_bpe())


def build_clip_vocab_and_merges() -> tuple[list[str], list[str]]:
    """Rebuild OpenAI CLIP's 49408-token vocabulary and its 48894 merges."""
    lines = gzip.open(bpe_merges_source()).read().decode("utf-8").split("\n")
    merges = lines[1:49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars]
    vocab += ["".join(m.split()) for m in merges]
    vocab += [SOT, EOT]
    assert len(vocab) == 49408 and len(set(vocab)) == 49408, len(vocab)
    assert len(merges) == 48894
    return vocab, merges


def write_vocab_and_merges(directory: Path, vocab: list[str], merges: list[str]) -> None:
    """Write HF-style vocab.json (token -> id) and merges.txt (with version header)."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "vocab.json", "w", encoding="utf-8") as f:
        json.dump({tok: i for i, tok in enumerate(vocab)}, f, ensure_ascii=False)
    with open(directory / "merges.txt", "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


def load_hf_tokenizer(directory: Path) -> CLIPTokenizer:
    """Load the transformers CLIP tokenizer from a folder and sanity-check it."""
    tok = CLIPTokenizer.from_pretrained(str(directory), model_max_length=CONTEXT_LENGTH)
    ids = tok("a photo of a cat")["input_ids"]
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407], ids
    return tok


def build_hf_tokenizer(vocab: list[str], merges: list[str], workdir: Path) -> CLIPTokenizer:
    """CLIPTokenizer built from vocab.json + merges.txt (transformers 5 has no
    pure-Python CLIP tokenizer: CLIPTokenizer *is* the tokenizers-backed one and
    CLIPTokenizerFast is an alias of it)."""
    write_vocab_and_merges(workdir, vocab, merges)
    return load_hf_tokenizer(workdir)


class OpenAIReferenceTokenizer:
    """OpenAI's original ``simple_tokenizer.py`` (the "slow" Python tokenizer),
    reading the same vocab.json + merges.txt.  Text cleaning: ftfy.fix_text,
    html.unescape twice, strip, collapse whitespace, lowercase."""

    def __init__(self, directory: Path):
        self.encoder = json.loads((directory / "vocab.json").read_text(encoding="utf-8"))
        merges = (directory / "merges.txt").read_text(encoding="utf-8").split("\n")[1:]
        self.bpe_ranks = {tuple(m.split()): i for i, m in enumerate(m for m in merges if m)}
        self.byte_encoder = bytes_to_unicode()
        self.cache = {SOT: SOT, EOT: EOT}
        self.pat = regex.compile(
            r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+""",
            regex.IGNORECASE,
        )

    @staticmethod
    def clean(text: str) -> str:
        if ftfy is not None:
            text = ftfy.fix_text(text)
        text = html.unescape(html.unescape(text)).strip()
        return regex.sub(r"\s+", " ", text).strip().lower()

    def bpe(self, token: str) -> str:
        if token in self.cache:
            return self.cache[token]
        word = tuple(token[:-1]) + (token[-1] + "</w>",)
        while len(word) > 1:
            pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
            bigram = min(pairs, key=lambda p: self.bpe_ranks.get(p, float("inf")))
            if bigram not in self.bpe_ranks:
                break
            first, second = bigram
            new_word, i = [], 0
            while i < len(word):
                if i < len(word) - 1 and word[i] == first and word[i + 1] == second:
                    new_word.append(first + second)
                    i += 2
                else:
                    new_word.append(word[i])
                    i += 1
            word = tuple(new_word)
        result = " ".join(word)
        self.cache[token] = result
        return result

    def encode(self, text: str) -> list[int]:
        ids = []
        for token in self.pat.findall(self.clean(text)):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids.extend(self.encoder[t] for t in self.bpe(token).split(" "))
        return ids

    def encode_truncated(self, text: str) -> list[int]:
        return [self.encoder[SOT]] + self.encode(text)[: CONTEXT_LENGTH - 2] + [self.encoder[EOT]]


# --------------------------------------------------------------------------------------
# Test images
# --------------------------------------------------------------------------------------

def _base_pattern(rng: np.random.Generator, width: int, height: int, variant: int) -> np.ndarray:
    """Gradient + noise + a shape: an RGB uint8 array whose resize result matters."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    u, v = x / max(width - 1, 1), y / max(height - 1, 1)
    phase = variant * 1.7
    r = 255 * (0.5 + 0.5 * np.sin(2 * np.pi * (u * (1 + variant) + phase)))
    g = 255 * v
    b = 255 * (0.5 + 0.5 * np.cos(2 * np.pi * (u + v) * (2 + variant % 3)))
    img = np.stack([r, g, b], axis=-1)
    img += rng.normal(0.0, 18.0, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _draw_shapes(im: Image.Image, rng: np.random.Generator, count: int = 3) -> Image.Image:
    draw = ImageDraw.Draw(im)
    w, h = im.size
    for k in range(count):
        x0, y0 = int(rng.integers(0, max(w // 2, 1))), int(rng.integers(0, max(h // 2, 1)))
        x1, y1 = x0 + int(rng.integers(max(w // 4, 1), max(w // 2, 2))), y0 + int(rng.integers(max(h // 4, 1), max(h // 2, 2)))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        if k % 2 == 0:
            draw.ellipse([x0, y0, x1, y1], fill=color)
        else:
            draw.rectangle([x0, y0, x1, y1], outline=color, width=2)
    return im


def _input_image(rng: np.random.Generator, size: int, variant: int) -> Image.Image:
    """Four visually different images per model at exactly the model input size."""
    if variant == 0:  # smooth gradient + noise + shapes
        return _draw_shapes(Image.fromarray(_base_pattern(rng, size, size, 0)), rng)
    if variant == 1:  # checkerboard with a red disc
        y, x = np.mgrid[0:size, 0:size]
        cb = (((x // 4) + (y // 4)) % 2 * 200 + 30).astype(np.uint8)
        im = Image.fromarray(np.stack([cb, cb // 2, 255 - cb], axis=-1))
        ImageDraw.Draw(im).ellipse([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(230, 20, 20))
        return im
    if variant == 2:  # pure noise
        return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    # dark image with bright stripes
    img = np.full((size, size, 3), 15, np.uint8)
    img[:, ::5] = (250, 240, 40)
    img[::7, :] = (40, 200, 250)
    return _draw_shapes(Image.fromarray(img), rng, count=2)


def make_images(directory: Path) -> list[str]:
    """Write all test images; return their file names in a fixed order."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    names = []

    def save(im: Image.Image, name: str, **kwargs) -> None:
        im.save(directory / name, **kwargs)
        names.append(name)

    for spec in MODEL_SPECS.values():
        size = spec["vision"]["image_size"]
        for i in range(4):
            save(_input_image(rng, size, i), f"{spec['prefix']}_input_{i}.png", optimize=False)

    save(_draw_shapes(Image.fromarray(_base_pattern(rng, 97, 61, 1)), rng), "wide_rgb.png")
    save(_draw_shapes(Image.fromarray(_base_pattern(rng, 45, 130, 2)), rng), "tall_rgb.jpg",
         quality=90, subsampling=0)
    save(_rgba_image(rng), "rgba.png")
    save(Image.fromarray(_base_pattern(rng, 64, 40, 3)).convert("L"), "gray.png")
    save(_palette_image(rng), "palette.png")
    save(_gray16_image(), "gray16.png")
    save(_draw_shapes(Image.fromarray(_base_pattern(rng, 80, 80, 4)), rng), "photo.webp", lossless=True, quality=100)
    save(_draw_shapes(Image.fromarray(_base_pattern(rng, 33, 77, 5)), rng), "image.bmp")
    _save_gif(rng, directory / "anim.gif")
    names.append("anim.gif")
    save(Image.fromarray(_base_pattern(rng, 7, 5, 6)), "tiny.png")
    return names


def _rgba_image(rng: np.random.Generator) -> Image.Image:
    """70x50 RGBA with an alpha ramp, a fully transparent band and an opaque block."""
    rgb = _base_pattern(rng, 70, 50, 7)
    alpha = np.tile(np.linspace(0, 255, 70), (50, 1))
    alpha[:, :10] = 0          # fully transparent (colour underneath is not white)
    alpha[30:45, 40:65] = 255  # fully opaque block
    alpha = np.round(alpha).astype(np.uint8)
    return Image.fromarray(np.dstack([rgb, alpha]), mode="RGBA")


def _palette_image(rng: np.random.Generator) -> Image.Image:
    """50x50 mode P, adaptive 16-colour palette; palette index 0 is transparent (tRNS)."""
    im = _draw_shapes(Image.fromarray(_base_pattern(rng, 50, 50, 8)), rng)
    im = im.quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    im.info["transparency"] = 0
    return im


def _gray16_image() -> Image.Image:
    """40x60 16-bit grayscale (I;16): full 0..65535 ramp, plus a band of values <= 255."""
    y, x = np.mgrid[0:60, 0:40]
    arr = (x * 60 + y) / (40 * 60 - 1) * 65535
    arr[:, :8] = (y[:, :8] * 4 + x[:, :8]) % 256  # low values, where clamping and scaling differ less
    return Image.fromarray(np.round(arr).astype(np.uint16))


def _save_gif(rng: np.random.Generator, path: Path) -> None:
    """Two-frame 40x40 GIF; the reference is the first frame."""
    frames = [
        _draw_shapes(Image.fromarray(_base_pattern(rng, 40, 40, 9 + k)), rng).quantize(
            colors=32, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
        for k in range(2)
    ]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, optimize=False)


# --------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------

def clip_config(spec: dict) -> CLIPConfig:
    return CLIPConfig(
        text_config=dict(spec["text"], projection_dim=spec["projection_dim"]),
        vision_config=dict(spec["vision"], projection_dim=spec["projection_dim"]),
        projection_dim=spec["projection_dim"],
        logit_scale_init_value=spec["logit_scale_init_value"],
    )


def reinit_parameters(model: CLIPModel, logit_scale_init: float, seed: int) -> None:
    """Re-initialise every parameter so activations are O(1) and outputs are
    sensitive to the inputs: linear/conv weights N(0, gain/sqrt(fan_in)),
    embeddings N(0, 0.5), layer-norm weights 1 + N(0, 0.2), biases N(0, 0.1)."""
    gen = torch.Generator().manual_seed(seed)

    def normal_(p: torch.nn.Parameter, mean: float, std: float) -> None:
        with torch.no_grad():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * std + mean)

    done = set()
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.LayerNorm):
            normal_(module.weight, 1.0, LAYERNORM_WEIGHT_STD)
            normal_(module.bias, 0.0, BIAS_STD)
        elif isinstance(module, (torch.nn.Linear, torch.nn.Conv2d)):
            fan_in = module.weight[0].numel()
            normal_(module.weight, 0.0, LINEAR_GAIN / math.sqrt(fan_in))
            if module.bias is not None:
                normal_(module.bias, 0.0, BIAS_STD)
        elif isinstance(module, torch.nn.Embedding):
            normal_(module.weight, 0.0, EMBEDDING_STD)
        else:
            continue
        done.update(id(p) for p in module.parameters(recurse=False))
    emb = model.vision_model.embeddings
    normal_(emb.class_embedding, 0.0, EMBEDDING_STD)
    done.add(id(emb.class_embedding))
    with torch.no_grad():
        model.logit_scale.fill_(logit_scale_init)
    done.add(id(model.logit_scale))
    missed = [n for n, p in model.named_parameters() if id(p) not in done]
    assert not missed, f"parameters not re-initialised: {missed}"


def build_model(spec: dict, seed: int) -> CLIPModel:
    torch.manual_seed(seed)
    model = CLIPModel(clip_config(spec)).eval()
    reinit_parameters(model, spec["logit_scale_init_value"], seed)
    return model


def save_model_weights(model: CLIPModel, spec: dict, directory: Path) -> None:
    """save_pretrained in the spec's storage dtype (and sharding)."""
    if spec["storage_dtype"] == "float16":
        model = model.half()
    kwargs = {}
    if spec["max_shard_size"]:
        kwargs["max_shard_size"] = spec["max_shard_size"]
    model.save_pretrained(str(directory), safe_serialization=True, **kwargs)


# tokenizer_config.json / special_tokens_map.json as the original openai/clip-* repos have them.
LEGACY_TOKENIZER_CONFIG = {
    "add_prefix_space": False,
    "bos_token": SOT,
    "do_lower_case": True,
    "eos_token": EOT,
    "errors": "replace",
    "model_max_length": CONTEXT_LENGTH,
    "pad_token": EOT,
    "tokenizer_class": "CLIPTokenizer",
    "unk_token": EOT,
}
LEGACY_SPECIAL_TOKENS_MAP = {"bos_token": SOT, "eos_token": EOT, "pad_token": EOT, "unk_token": EOT}


def save_tokenizer(tokenizer: CLIPTokenizer, vocab: list[str], merges: list[str], spec: dict, directory: Path) -> None:
    """Fast tokenizer.json via save_pretrained (clip-a), or legacy vocab.json +
    merges.txt + hand-written tokenizer_config.json only (clip-b)."""
    if spec["tokenizer_files"] == "tokenizer.json":
        tokenizer.save_pretrained(str(directory))
        for extra in ("vocab.json", "merges.txt"):
            (directory / extra).unlink(missing_ok=True)
        # Drop keys that only describe the machine the file was written on.
        config_path = directory / "tokenizer_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        for key in ("is_local", "local_files_only"):
            config.pop(key, None)
        config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return
    write_vocab_and_merges(directory, vocab, merges)
    (directory / "tokenizer_config.json").write_text(json.dumps(LEGACY_TOKENIZER_CONFIG, indent=2) + "\n")
    (directory / "special_tokens_map.json").write_text(json.dumps(LEGACY_SPECIAL_TOKENS_MAP, indent=2) + "\n")


def save_preprocessor(spec: dict, directory: Path) -> None:
    """Nested (current) preprocessor_config.json via CLIPImageProcessor, or a
    hand-written legacy flat one like the original openai/clip-* repos have."""
    size = spec["vision"]["image_size"]
    if spec["preprocessor"] == "nested":
        CLIPImageProcessorPil(
            size={"shortest_edge": size}, crop_size={"height": size, "width": size},
            do_resize=True, do_center_crop=True, do_rescale=True, do_normalize=True, do_convert_rgb=True,
            resample=3, rescale_factor=1 / 255, image_mean=spec["image_mean"], image_std=spec["image_std"],
        ).save_pretrained(str(directory))
        return
    legacy = {
        "crop_size": size,
        "do_center_crop": True,
        "do_normalize": True,
        "do_resize": True,
        "feature_extractor_type": "CLIPFeatureExtractor",
        "image_mean": spec["image_mean"],
        "image_std": spec["image_std"],
        "resample": 3,
        "size": size,
    }
    (directory / "preprocessor_config.json").write_text(json.dumps(legacy, indent=2) + "\n")


def write_model_folder(name: str, spec: dict, tokenizer, vocab, merges, models_dir: Path, seed: int) -> Path:
    directory = models_dir / name
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    save_model_weights(build_model(spec, seed), spec, directory)
    save_tokenizer(tokenizer, vocab, merges, spec, directory)
    save_preprocessor(spec, directory)
    return directory


# --------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------

def load_reference_model(directory: Path) -> CLIPModel:
    """The model as stored on disk (f16 weights included), computed in float32."""
    model = CLIPModel.from_pretrained(str(directory), dtype=torch.float32, attn_implementation="eager")
    return model.eval()


def load_image_processor(directory: Path) -> CLIPImageProcessorPil:
    """The PIL-based CLIP processor.  In transformers 5 ``CLIPImageProcessor`` is the
    torchvision backend; ``CLIPImageProcessorPil`` is the PIL/numpy one."""
    return CLIPImageProcessorPil.from_pretrained(str(directory))


def features(out) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4, an output object in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def l2_normalize(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def tokenize_batch(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(texts, padding="max_length", max_length=CONTEXT_LENGTH, truncation=True,
                     return_tensors="pt")["input_ids"]


def pixel_values_for(processor, images_dir: Path, names: list[str]) -> dict[str, torch.Tensor]:
    out = {}
    for name in names:
        with Image.open(images_dir / name) as im:  # GIF: PIL opens on the first frame
            out[name] = processor(images=im, return_tensors="pt")["pixel_values"][0].float()
    return out


def pairwise_cosine_stats(x: torch.Tensor) -> dict[str, float]:
    x = l2_normalize(x)
    sims = x @ x.T
    off = sims[~torch.eye(len(x), dtype=torch.bool)]
    return {"min": round(off.min().item(), 4), "mean": round(off.mean().item(), 4), "max": round(off.max().item(), 4)}


def hidden_states(model: CLIPModel, pixel_values: torch.Tensor, input_ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Intermediate activations for the first image / first text (batch dim dropped)."""
    out = {}
    vis = model.vision_model(pixel_values=pixel_values, output_hidden_states=True)
    out["hidden/vision_embeddings"] = vis.hidden_states[0][0]
    for i, h in enumerate(vis.hidden_states[1:], start=1):
        out[f"hidden/vision_layer_{i}"] = h[0]
    out["hidden/vision_last_hidden_state"] = vis.last_hidden_state[0]
    out["hidden/vision_pooled"] = vis.pooler_output[0]
    txt = model.text_model(input_ids=input_ids, output_hidden_states=True)
    out["hidden/text_embeddings"] = txt.hidden_states[0][0]
    for i, h in enumerate(txt.hidden_states[1:], start=1):
        out[f"hidden/text_layer_{i}"] = h[0]
    out["hidden/text_last_hidden_state"] = txt.last_hidden_state[0]
    out["hidden/text_pooled"] = txt.pooler_output[0]
    return out


def zeroshot_class_embeds(model: CLIPModel, tokenizer) -> tuple[torch.Tensor, torch.Tensor]:
    """Per label: normalise each prompt's features, average, normalise again."""
    prompts = [t.format(label) for label in ZEROSHOT_LABELS for t in ZEROSHOT_TEMPLATES]
    ids = tokenize_batch(tokenizer, prompts)
    feats = l2_normalize(features(model.get_text_features(input_ids=ids)))
    feats = feats.view(len(ZEROSHOT_LABELS), len(ZEROSHOT_TEMPLATES), -1).mean(dim=1)
    return l2_normalize(feats), ids


@torch.no_grad()
def compute_reference(name: str, spec: dict, model_dir: Path, images_dir: Path, image_names: list[str]):
    model = load_reference_model(model_dir)
    tokenizer = load_hf_tokenizer(model_dir)
    processor = load_image_processor(model_dir)

    pixels = pixel_values_for(processor, images_dir, image_names)
    input_names = [f"{spec['prefix']}_input_{i}.png" for i in range(4)]
    pv = torch.stack([pixels[n] for n in input_names])
    ids = tokenize_batch(tokenizer, REFERENCE_TEXTS)

    img_raw = features(model.get_image_features(pixel_values=pv))
    txt_raw = features(model.get_text_features(input_ids=ids))
    img, txt = l2_normalize(img_raw), l2_normalize(txt_raw)
    full = model(input_ids=ids, pixel_values=pv)
    logit_scale = model.logit_scale.exp()
    assert torch.allclose(full.logits_per_image, logit_scale * img @ txt.T, atol=1e-4)

    class_embeds, zs_ids = zeroshot_class_embeds(model, tokenizer)
    probs = torch.softmax(logit_scale * img @ class_embeds.T, dim=-1)

    tensors = {f"pixel_values/{n}": t for n, t in pixels.items()}
    tensors.update({
        "image_embeds": img, "image_embeds_unnormalized": img_raw,
        "text_input_ids": ids.to(torch.int64),
        "text_embeds": txt, "text_embeds_unnormalized": txt_raw,
        "logits_per_image": full.logits_per_image, "logits_per_text": full.logits_per_text,
        "logit_scale": logit_scale.reshape(()),
        "zeroshot_input_ids": zs_ids.to(torch.int64),
        "zeroshot_class_embeds": class_embeds, "zeroshot_probs": probs,
    })
    tensors.update(hidden_states(model, pv[:1], ids[:1]))
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    tensors = {k: (v if v.dtype == torch.int64 else v.float()) for k, v in tensors.items()}

    stats = {
        "image_embeds_pairwise_cosine": pairwise_cosine_stats(img_raw),
        "text_embeds_pairwise_cosine": pairwise_cosine_stats(txt_raw),
        "zeroshot_class_embeds_pairwise_cosine": pairwise_cosine_stats(class_embeds),
        "image_embeds_norms": [round(v, 4) for v in img_raw.norm(dim=-1).tolist()],
        "text_embeds_norms": [round(v, 4) for v in txt_raw.norm(dim=-1).tolist()],
    }
    meta = reference_metadata(name, spec, model_dir, processor, image_names, input_names, tensors, stats)
    return tensors, meta


def reference_metadata(name, spec, model_dir, processor, image_names, input_names, tensors, stats) -> dict:
    return {
        "model": name,
        "model_dir": f"models/{name}",
        "versions": library_versions(),
        "weights": {
            "storage_dtype": spec["storage_dtype"],
            "sharded": bool(spec["max_shard_size"]),
            "files": sorted(p.name for p in model_dir.iterdir()),
            "computed_in": "float32, CLIPModel.from_pretrained(model_dir, dtype=torch.float32, "
                           "attn_implementation='eager') -- i.e. with the weights exactly as stored on disk",
            "init": {"seed": SEED if name == "clip-a" else SEED + 1, "linear_gain": LINEAR_GAIN,
                     "embedding_std": EMBEDDING_STD, "layernorm_weight": f"1 + N(0, {LAYERNORM_WEIGHT_STD})",
                     "bias_std": BIAS_STD},
        },
        "text_pooling": ("argmax of input_ids (legacy eos_token_id == 2)" if spec["text"]["eos_token_id"] == 2
                         else f"first position where input_ids == eos_token_id ({spec['text']['eos_token_id']})"),
        "image_processor": {
            "class": type(processor).__name__,
            "note": "transformers 5: CLIPImageProcessor is the torchvision backend; the PIL/numpy backend "
                    "CLIPImageProcessorPil was used explicitly (loaded with from_pretrained(model_dir)).",
            "effective_config": json.loads(processor.to_json_string()),
            "mode_handling": PROCESSOR_MODE_NOTES,
        },
        "images": image_names,
        "input_images": input_names,
        "texts": REFERENCE_TEXTS,
        "zeroshot": {"labels": ZEROSHOT_LABELS, "templates": ZEROSHOT_TEMPLATES,
                     "prompts_order": "label-major: for label in labels: for template in templates"},
        "tensors": {k: {"shape": list(v.shape), "dtype": str(v.dtype).replace("torch.", "")} for k, v in tensors.items()},
        "how_computed": TENSOR_DOCS,
        "sanity": stats,
    }


PROCESSOR_MODE_NOTES = {
    "convert_rgb": "transformers.image_transforms.convert_to_rgb: if 'A' in image.getbands() or "
                   "image.info has 'transparency' -> image.convert('RGBA') then PIL.Image.alpha_composite onto an "
                   "opaque WHITE background, then convert('RGB'); otherwise image.convert('RGB').",
    "RGBA": "alpha-composited onto white (fully transparent pixels become (255,255,255)); alpha is not dropped.",
    "P": "palette.png has a tRNS entry (index 0 transparent) -> converted to RGBA and composited onto white; "
         "a palette image without transparency is just convert('RGB').",
    "L": "gray replicated to R=G=B by convert('RGB').",
    "I;16": "PIL convert('RGB') from I;16 CLAMPS each value to 0..255 (min(v, 255)); it does NOT scale by 1/257 "
            "or >> 8. Most of gray16.png therefore becomes white.",
    "GIF": "PIL opens the first frame (mode P, no transparency in anim.gif).",
    "JPEG": "decoded by Pillow's libjpeg(-turbo); tall_rgb.jpg is saved with 4:4:4 subsampling, quality 90.",
    "pipeline": "convert_rgb (uint8) -> resize shortest edge with PIL bicubic on uint8 RGB "
                "(other edge = int(size * long / short)) -> center crop -> *rescale_factor (1/255) -> (x-mean)/std",
}

TENSOR_DOCS = {
    "pixel_values/<image>": "(3,H,W) float32: CLIPImageProcessorPil(images=PIL.Image.open(path))['pixel_values'][0]",
    "image_embeds_unnormalized": "(4,P): CLIPModel.get_image_features(pixel_values of the 4 input images).pooler_output "
                                 "(= visual_projection(post_layernorm(CLS)))",
    "image_embeds": "(4,P): image_embeds_unnormalized / L2 norm",
    "text_input_ids": "(8,77) int64: tokenizer(texts, padding='max_length', max_length=77, truncation=True); pad id 49407",
    "text_embeds_unnormalized": "(8,P): CLIPModel.get_text_features(input_ids) (no attention_mask; causal mask only)",
    "text_embeds": "(8,P): text_embeds_unnormalized / L2 norm",
    "logits_per_image": "(4,8): CLIPModel(input_ids, pixel_values).logits_per_image = exp(logit_scale) * img @ txt.T",
    "logits_per_text": "(8,4): transpose of logits_per_image",
    "logit_scale": "() scalar: exp(model.logit_scale)",
    "zeroshot_input_ids": "(15,77) int64: prompts, label-major",
    "zeroshot_class_embeds": "(5,P): per label mean of L2-normalised prompt features, L2-normalised again",
    "zeroshot_probs": "(4,5): softmax(logit_scale * image_embeds @ zeroshot_class_embeds.T, dim=-1)",
    "hidden/vision_embeddings": "(N+1,Dv): patch+class+position embeddings AFTER pre_layrnorm (encoder input), image 0",
    "hidden/vision_layer_<i>": "(N+1,Dv): output of encoder layer i (1-based); the last equals vision_last_hidden_state",
    "hidden/vision_last_hidden_state": "(N+1,Dv): encoder output, before post_layernorm",
    "hidden/vision_pooled": "(Dv,): post_layernorm(last_hidden_state[0]) before visual_projection",
    "hidden/text_embeddings": "(77,Dt): token + position embeddings of text 0 (padded to 77)",
    "hidden/text_layer_<i>": "(77,Dt): output of text encoder layer i (1-based), causal mask only",
    "hidden/text_last_hidden_state": "(77,Dt): after final_layer_norm; positions after the first EOS depend on padding",
    "hidden/text_pooled": "(Dt,): last_hidden_state at the pooled position, before text_projection",
}


def library_versions() -> dict[str, str]:
    import open_clip

    return {
        "transformers": transformers.__version__, "torch": torch.__version__, "tokenizers": tokenizers.__version__,
        "pillow": PIL.__version__, "numpy": np.__version__, "safetensors": safetensors.__version__,
        "open_clip_torch": open_clip.__version__, "ftfy": getattr(ftfy, "__version__", None),
    }


def decoded_images(images_dir: Path, names: list[str]) -> dict[str, torch.Tensor]:
    """RGB uint8 (H,W,3) of each image exactly as the processor sees it after convert_to_rgb."""
    out = {}
    for name in names:
        with Image.open(images_dir / name) as im:
            out[f"decoded_rgb/{name}"] = torch.from_numpy(convert_to_rgb(im, return_numpy=True).copy())
    return out


# --------------------------------------------------------------------------------------
# Tokenizer cases
# --------------------------------------------------------------------------------------

def tokenizer_case_texts() -> list[tuple[str, str]]:
    """(category, text) pairs; deterministic."""
    cases: list[tuple[str, str]] = []

    def add(category: str, *texts: str) -> None:
        cases.extend((category, t) for t in texts)

    add("empty", "", " ", "\n", "\t \n ")
    add("english", "a photo of a cat", "a photo of a dog", "A photo of a cat.", "the quick brown fox jumps over the lazy dog",
        "hello world", "Hello, World!", "a diagram", "a painting of a sunset over the ocean",
        "an astronaut riding a horse on the moon", "two dogs playing in the snow", "a close-up photo of a red apple",
        "itap of a car.", "a bad photo of the tree.", "a black and white photo of the house.",
        "a origami bird.", "this is a test sentence with several words in it",
        "pneumonoultramicroscopicsilicovolcanoconiosis", "antidisestablishmentarianism", "supercalifragilisticexpialidocious",
        "unbelievable", "photographer's photographs photographed", "New York City", "San Francisco Golden Gate Bridge",
        "the", "a", "I", "x", "ok")
    add("punctuation", "!", "?!", "...", "…", "hello!!!", "wait... what?", "a-b-c", "a_b_c", "a/b\\c", "(parentheses)",
        "[brackets] {braces} <angles>", "semi;colon:colon", "\"double quotes\"", "'single quotes'", "`backticks`",
        "#hashtag @mention", "50% off!", "$100 & €50 & £20 & ¥1000", "a+b=c*d^e", "~tilde|pipe", "--double dash",
        "em—dash en–dash", "«guillemets» „quotes“", "¿Qué? ¡Sí!", "•bullet · middot", "©®™", "→ ← ↑ ↓ ⇒",
        "::", "a.b.c", "?", "@@@", "#1", "e.g. i.e. etc.")
    add("numbers", "0", "7", "42", "123456789", "3.14159", "1,000,000", "1e-5", "-17", "+44 20 7946 0958", "2024-06-11",
        "12:34:56", "v1.2.3", "0x1F600", "½ ¾ ²³", "٣ ٤ ٥ arabic-indic digits", "१२३ devanagari digits", "①②③",
        "Ⅳ roman numeral", "１２３ fullwidth digits", "1st 2nd 3rd 4th", "100km/h")
    add("casing", "CAT", "Cat", "cAt", "A PHOTO OF A CAT", "CamelCaseWord", "iPhone", "HTTP", "ÀÉÎÕÜ", "ΑΒΓ greek caps",
        "ПРИВЕТ МИР", "Straße STRASSE", "İstanbul", "ǅ titlecase digraph", "ΣΊΣΥΦΟΣ")
    add("whitespace", "  leading spaces", "trailing spaces   ", "multiple    spaces   between", "tab\tseparated\twords",
        "new\nline", "windows\r\nline", "many\n\n\nnewlines", "\t\tleading tabs", "mixed \t\n\r whitespace",
        "no\u00a0break\u00a0space", "ideographic\u3000space", "em\u2003space", "line\u2028separator",
        "vertical\x0btab\x0cformfeed", "next\x85line", "file\x1cseparator\x1frecord")
    add("html", "&amp;", "&lt;b&gt;bold&lt;/b&gt;", "fish &amp; chips", "&quot;quoted&quot;", "&#39;apos&#39;",
        "&nbsp;nbsp", "&copy; 2024", "&amp;amp; double escaped", "<b>bold</b>", "<a href=\"x\">link</a>",
        "&#x1F600; hex entity", "&unknown; entity", "AT&T", "&lt;", "&gt;")
    add("emoji", "😀", "🐱", "I ❤️ cats", "❤", "👍🏽 thumbs up medium skin", "👨‍👩‍👧‍👦 family", "👩🏻‍💻 technologist",
        "🏳️‍🌈 rainbow flag", "🇯🇵 🇺🇸 🇩🇪 flags", "🏴󠁧󠁢󠁳󠁣󠁴󠁿 scotland", "😀😀😀😀", "cat🐱dog🐶", "🎉🎊🥳",
        "☃️ snowman", "#️⃣ keycap", "✅ ❌ ⭐", "🧑‍🚀 astronaut emoji")
    add("scripts", "一只猫的照片", "東京タワー", "ひらがな カタカナ", "你好，世界！", "漢字テスト123", "中文english混合",
        "안녕하세요 세계", "고양이 사진", "한국어와 English", "مرحبا بالعالم", "صورة قطة", "שלום עולם", "Привет, мир!",
        "фотография кошки", "Ελληνικά γράμματα", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Tiếng Việt có dấu", "ქართული ენა",
        "Հայերեն", "ᚠᚢᚦᚨᚱᚲ runes", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math fraktur", "𝐛𝐨𝐥𝐝 math bold", "ａｂｃ　ＦＵＬＬＷＩＤＴＨ")
    add("accents", "café", "cafe\u0301", "naïve résumé", "crème brûlée", "Ångström", "A\u030angstro\u0308m",
        "ñandú", "n\u0303", "Zoë Saldaña", "e\u0301\u0301 double combining", "\u0301 leading combining mark",
        "Ǆ ǆ ǉ", "ﬁ ligature ﬂ", "œuvre Œ æ Æ", "ø Ø ß ẞ", "Ⓐ circled")
    add("control", "\x00", "a\x00b", "bell\x07char", "zero\u200bwidth", "\u200b", "soft\u00adhyphen",
        "zwj\u200djoiner", "bom\ufeffinside", "\x1b[31mred\x1b[0m", "rtl\u202eoverride", "del\x7fchar",
        "\x01\x02\x03", "replacement \ufffd char", "private \ue000 use", "noncharacter \uffff")
    add("special_tokens", "<|startoftext|>", "<|endoftext|>", "a <|endoftext|> b", "<|ENDOFTEXT|>",
        "<start_of_text>", "<|startoftext|>hello<|endoftext|>")
    add("leading_dash", "-leading dash", "-", "--", "- a list item", "-1", "-dash-separated-words", "—em dash lead",
        "--help", "-v -x -f")
    add("apostrophes", "it's", "don't", "I'm", "you're", "we've", "they'll", "she'd", "IT'S", "DON'T", "cat's toy",
        "rock 'n' roll", "'s", "''", "o'clock", "it’s curly", "don’t curly", "the dogs' bones", "y'all'd've",
        "'tis", "it's it's it's")
    add("urls", "https://www.example.com/path?query=1&x=y#frag", "http://localhost:8080", "www.google.com",
        "user@example.com", "ftp://files.example.org/a_b-c.tar.gz", "C:\\Windows\\System32", "/usr/local/bin/python3",
        "#!/bin/bash", "def foo(x): return x**2", "for(int i=0;i<10;i++){}", "<div class=\"a\">", "{\"json\": [1, 2, 3]}",
        "SELECT * FROM table;", "a_snake_case_identifier", "kebab-case-identifier")
    add("repeated", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!", "ha" * 30,
        "cat " * 20, "🐱" * 20, "..." * 20, "abcabcabcabcabcabcabc", "zzzzzzzzzz", "ssssss", "1111111111111111111111")
    add("mojibake", "Ã©tÃ©", "â€œquotedâ€\x9d", "fianc\u00e9e vs fiancÃ©e", "“smart quotes”", "‘single smart’")
    # Truncation boundary: "cat" is one token, so n repetitions give n content tokens.
    add("truncation", *(" ".join(["cat"] * n) for n in (74, 75, 76, 77, 100)))
    add("truncation", "A rather long caption: " + " ".join(f"item number {i} is here," for i in range(40)),
        "一只猫的照片" * 30, "😀" * 80, "https://example.com/" + "abc/" * 60)
    add("long", long_text(10_000))
    add("generated", *generated_texts(60))
    return cases


def long_text(n_chars: int) -> str:
    rng = np.random.default_rng(SEED + 7)
    words = ["the", "cat", "sat", "on", "a", "mat", "photo", "dog", "Zürich", "東京", "🐱", "it's", "42", "&amp;", "-x"]
    text = ""
    while len(text) < n_chars:
        text += words[int(rng.integers(len(words)))] + (" " if rng.random() < 0.85 else "\n")
    return text[:n_chars]


def generated_texts(count: int) -> list[str]:
    """Random mixtures of words, punctuation, digits and scripts (seeded)."""
    rng = np.random.default_rng(SEED + 3)
    pieces = ["photo", "Photo", "CAT", "dog", "of", "a", "the", "running", "don't", "it's", "42", "3.5", "2024",
              "!", "?", ",", ".", "-", "--", "(", ")", "&amp;", "&", "'", "\"", "猫", "写真", "고양이", "кошка",
              "قطة", "γάτα", "🐱", "❤️", "👍🏽", "café", "naïve", "https://x.io", "#tag", "@me", "\t", "\n", "  ",
              "ÆØÅ", "ß", "ﬁ", "½", "™", "x²", "a_b", "über", "façade"]
    out = []
    for _ in range(count):
        n = int(rng.integers(1, 12))
        sep = ["", " "]
        out.append("".join(pieces[int(rng.integers(len(pieces)))] + sep[int(rng.integers(2))] for _ in range(n)))
    return out


def tokenizer_cases(fast, from_files, slow: OpenAIReferenceTokenizer) -> tuple[list[dict], dict]:
    """Ids from the fast tokenizer (tokenizer.json); record where the tokenizer
    loaded from vocab.json+merges.txt or the OpenAI reference differs."""
    cases, n_slow_diff, n_files_diff = [], 0, 0
    for category, text in tokenizer_case_texts():
        full = fast(text, truncation=False)["input_ids"]
        ids = fast(text, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
        assert ids == (full if len(full) <= CONTEXT_LENGTH else full[: CONTEXT_LENGTH - 1] + [full[-1]])
        case = {"category": category, "text": text, "ids": ids, "truncated": len(full) > CONTEXT_LENGTH}
        files_ids = from_files(text, truncation=True, max_length=CONTEXT_LENGTH)["input_ids"]
        if files_ids != ids:
            case["files_ids"] = files_ids
            n_files_diff += 1
        slow_ids = slow.encode_truncated(text)
        if slow_ids != ids:
            case["slow_ids"] = slow_ids
            n_slow_diff += 1
        cases.append(case)
    return cases, {"slow_disagreements": n_slow_diff, "files_disagreements": n_files_diff}


def write_tokenizer_cases(path: Path, fast, from_files, slow: OpenAIReferenceTokenizer) -> dict:
    cases, counts = tokenizer_cases(fast, from_files, slow)
    doc = {
        "description": "ids from the clip-a tokenizer.json (transformers CLIPTokenizer, tokenizers backend) with "
                       "truncation=True, max_length=77 (start + first 75 + end), no padding.",
        "versions": library_versions(),
        "fast_normalization": "tokenizers normalizer: NFC -> Replace(regex \\s+ -> ' ') -> Lowercase; pre-tokenizer: "
                              "Split(regex <\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|"
                              "[\\p{N}]|[^\\s\\p{L}\\p{N}]+, keep matches only) -> ByteLevel; BPE with '</w>' suffix. "
                              "No ftfy, no HTML unescaping. '<|startoftext|>'/'<|endoftext|>' in the raw text are "
                              "matched as special tokens (added tokens, case-sensitive) before normalisation.",
        "files_ids": "present only where CLIPTokenizer.from_pretrained(clip-b: vocab.json + merges.txt) differs",
        "slow_ids": "present only where OpenAI's original Python simple_tokenizer (same vocab.json + merges.txt; "
                    "ftfy.fix_text + html.unescape twice + whitespace collapse + lower) differs. transformers 5 "
                    "has no Python CLIP tokenizer any more (CLIPTokenizer is the tokenizers-backed one, "
                    "CLIPTokenizerFast an alias), so this is the reference 'slow' behaviour. ftfy "
                    f"{'installed' if ftfy else 'NOT installed'}.",
        "counts": dict(counts, total=len(cases)),
        "cases": cases,
    }
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return doc["counts"]


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

def write_reference(reference_dir: Path, name: str, tensors: dict, meta: dict) -> None:
    save_file(tensors, str(reference_dir / f"{name}.safetensors"), metadata={"model": name})
    (reference_dir / f"{name}.json").write_text(json.dumps(meta, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


def directory_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("tests/fixtures"))
    args = parser.parse_args()
    out: Path = args.out
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    vocab, merges = build_clip_vocab_and_merges()
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = build_hf_tokenizer(vocab, merges, Path(tmp))

    image_names = make_images(out / "images")
    reference_dir = out / "reference"
    reference_dir.mkdir(parents=True, exist_ok=True)
    for offset, (name, spec) in enumerate(MODEL_SPECS.items()):
        model_dir = write_model_folder(name, spec, tokenizer, vocab, merges, out / "models", SEED + offset)
        tensors, meta = compute_reference(name, spec, model_dir, out / "images", image_names)
        write_reference(reference_dir, name, tensors, meta)
        print(f"{name}: files={meta['weights']['files']}")
        print(f"{name}: sanity={json.dumps(meta['sanity'])}")
        print(f"{name}: zeroshot_probs=\n{tensors['zeroshot_probs']}")

    save_file(decoded_images(out / "images", image_names), str(reference_dir / "decoded_images.safetensors"))

    fast = load_hf_tokenizer(out / "models" / "clip-a")
    from_files = load_hf_tokenizer(out / "models" / "clip-b")
    slow = OpenAIReferenceTokenizer(out / "models" / "clip-b")
    counts = write_tokenizer_cases(reference_dir / "tokenizer_cases.json", fast, from_files, slow)
    print(f"tokenizer cases: {counts}")
    print(f"total fixture size: {directory_size(out) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()

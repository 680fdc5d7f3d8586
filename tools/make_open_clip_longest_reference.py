"""Reference pixels for open_clip's ``resize_mode: longest`` preprocessing.

Reads the preprocess settings of ``tests/fixtures/openclip/vit_safetensors`` (its mean, std,
interpolation and image size), switches the resize mode to ``longest`` and runs open_clip's
own inference transform (``ResizeKeepRatio(longest=1)`` then ``CenterCropOrPad``) on a wide
PNG and a tall JPEG. Writes ``tests/fixtures/openclip/longest_pixels.safetensors`` with one
(3, S, S) tensor per image, named by file. ``crates/clipkit/tests/openclip.rs`` compares
clipkit's preprocessing of the same folder with ``resize_mode`` edited to ``longest``.

    pip install open_clip_torch safetensors pillow
    python tools/make_open_clip_longest_reference.py
"""

import json
from pathlib import Path

from open_clip.transform import image_transform
from PIL import Image
from safetensors.torch import save_file

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "tests/fixtures/openclip/vit_safetensors"
IMAGES = ["wide_rgb.png", "tall_rgb.jpg"]


def main():
    config = json.loads((FOLDER / "open_clip_config.json").read_text())
    pre = config["preprocess_cfg"]
    size = config["model_cfg"]["vision_cfg"]["image_size"]
    transform = image_transform(
        size,
        is_train=False,
        mean=pre["mean"],
        std=pre["std"],
        resize_mode="longest",
        interpolation=pre["interpolation"],
        fill_color=0,
    )
    out = {}
    for name in IMAGES:
        image = Image.open(ROOT / "tests/fixtures/images" / name).convert("RGB")
        out[name] = transform(image).contiguous()
    save_file(out, str(ROOT / "tests/fixtures/openclip/longest_pixels.safetensors"))
    print({k: tuple(v.shape) for k, v in out.items()})


if __name__ == "__main__":
    main()

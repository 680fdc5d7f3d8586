#!/usr/bin/env python3
"""Writes tests/fixtures/reference/clip_score.json: CLIPScore, RefCLIPScore and torchmetrics'
CLIPScore computed with PyTorch on the fixture models, the reference `clipkit score` is tested
against (crates/clipkit-cli/tests/score.rs).

The formulas are reproduced here rather than imported (torchmetrics 1.9's own `clip_score` does
not run on transformers 5):

* CLIP-S (Hessel et al. 2021, jmhessel/clipscore): the caption is embedded as
  "A photo depicts " + caption; per pair 2.5 * max(cos(image, text), 0); overall the mean.
* RefCLIP-S: references are embedded with the same prefix; per pair the harmonic mean of
  CLIP-S and max(max_r cos(candidate, reference_r), 0) (0 when both are 0); overall the mean.
* torchmetrics: 100 * cos(image, text) per pair, no prefix; the mean over pairs clamped at 0.

Run: python3 tools/make_clip_score_reference.py
"""
import json
import sys
from pathlib import Path

import PIL
import torch
import transformers
from PIL import Image
from transformers import CLIPModel, CLIPProcessor

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
OUT = FIXTURES / "reference" / "clip_score.json"
PREFIX = "A photo depicts "

CASES = {
    "clip-a": {
        "images": ["a_input_0.png", "a_input_1.png", "a_input_2.png", "a_input_3.png"],
        "texts": ["a photo of a cat", "a dog running in the park", "", "a red square"],
        "references": [
            ["a cat", "a photo of a cat sitting"],
            ["a dog", "the park"],
            ["a blue circle"],
            ["a red square", "a square", "red"],
        ],
    },
    "clip-b": {
        "images": ["b_input_0.png", "b_input_1.png", "b_input_2.png"],
        "texts": ["a cat", "A Photo Of A DOG!", "two green triangles"],
        "references": [["a cat on a mat"], ["a dog", "a photo of a dog"], ["green"]],
    },
}


def features(output):
    """transformers 5 returns a model output from get_*_features; 4.x returned the tensor."""
    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output


def unit(x):
    return x / x.norm(p=2, dim=-1, keepdim=True)


def embed_texts(model, processor, texts):
    inputs = processor.tokenizer(texts, padding=True, truncation=True,
                                 max_length=model.config.text_config.max_position_embeddings,
                                 return_tensors="pt")
    return features(model.get_text_features(input_ids=inputs["input_ids"],
                                            attention_mask=inputs["attention_mask"]))


def embed_images(model, processor, paths):
    images = [Image.open(p).convert("RGB") for p in paths]
    pixels = processor.image_processor(images=images, return_tensors="pt")["pixel_values"]
    return features(model.get_image_features(pixel_values=pixels))


@torch.no_grad()
def case(name, spec):
    model_dir = FIXTURES / "models" / name
    model = CLIPModel.from_pretrained(str(model_dir)).eval().double()
    processor = CLIPProcessor.from_pretrained(str(model_dir))
    paths = [FIXTURES / "images" / p for p in spec["images"]]
    images = unit(embed_images(model, processor, paths).double())
    prefixed = unit(embed_texts(model, processor, [PREFIX + t for t in spec["texts"]]).double())
    plain = unit(embed_texts(model, processor, spec["texts"]).double())

    cos = (images * prefixed).sum(-1)
    clipscore = 2.5 * cos.clamp(min=0)

    # torchmetrics' _clip_score_update then compute, line for line.
    score = 100 * (images * plain).sum(axis=-1)
    tm = torch.max(score.sum(0) / len(spec["texts"]), torch.zeros_like(score.sum(0)))

    refclip = []
    for i, refs in enumerate(spec["references"]):
        r = unit(embed_texts(model, processor, [PREFIX + t for t in refs]).double())
        text_text = (prefixed[i] @ r.T).max().clamp(min=0)
        c = clipscore[i]
        refclip.append(0.0 if c + text_text == 0 else float(2 * c * text_text / (c + text_text)))

    return {
        "model": name,
        "images": spec["images"],
        "texts": spec["texts"],
        "references": spec["references"],
        "pairs": [
            {"path": p, "text": t, "clipscore": float(s), "torchmetrics_100cos": float(m),
             "refclipscore": r}
            for p, t, s, m, r in zip(spec["images"], spec["texts"], clipscore, score, refclip)
        ],
        "clipscore": float(clipscore.mean()),
        "torchmetrics_clip_score": float(tm),
        "refclipscore": sum(refclip) / len(refclip),
    }


def main():
    out = {
        "description": "CLIP-S / RefCLIP-S (jmhessel/clipscore, prefix 'A photo depicts ') and "
                       "torchmetrics CLIPScore (100*cos, no prefix, mean clamped at 0), computed "
                       "in float64 by tools/make_clip_score_reference.py with transformers "
                       "CLIPModel + CLIPProcessor on the fixture model folders.",
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "pillow": PIL.__version__, "python": sys.version.split()[0]},
        "cases": [case(name, spec) for name, spec in CASES.items()],
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Check that a tokenizer fitted by clipkit reads the same in transformers.

Run from the repository root (after ``cargo build --release --workspace --examples``):

    /opt/refenv/bin/python tools/check_fitted_tokenizer.py [--write]

Steps:

1. ``tests/fixtures/fitted/captions.txt`` is the caption corpus (written by this script
   with ``--regenerate-corpus``: a shapes-world grammar plus a few hundred everyday words
   and some odd spellings, fixed seed).
2. ``target/release/examples/write_random_model`` fits clipkit's tokenizer to it and
   writes a model folder.
3. The folder's tokenizer is loaded four ways: ``CLIPTokenizer.from_pretrained`` on the
   folder (``tokenizer.json``), the same on a copy holding only ``vocab.json`` +
   ``merges.txt`` + ``tokenizer_config.json``, ``CLIPTokenizerFast.from_pretrained``
   (in transformers 5 an alias of ``CLIPTokenizer``, checked anyway), and the raw
   ``tokenizers.Tokenizer.from_file``. On the corpus, OpenAI's original Python BPE
   (``OpenAIReferenceTokenizer`` from ``make_fixtures.py``) is a fifth, independent reader
   of ``vocab.json`` + ``merges.txt``.
4. All of them and ``clipkit tokenize --json`` must give identical ids on every corpus
   caption and on odd strings (unknown words and characters, case, whitespace,
   punctuation, special-token text, truncation); every corpus word must be one token.

With ``--write`` the ids go to ``tests/fixtures/reference/fitted_tokenizer_cases.json``,
which ``crates/clipkit/tests/fitted_tokenizer.rs`` checks without Python. Exits non-zero on
any disagreement.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402
import transformers  # noqa: E402
from transformers import CLIPTokenizer, CLIPTokenizerFast  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import OpenAIReferenceTokenizer  # noqa: E402

SEED = 20240612

COLOURS = ["red", "green", "blue", "yellow", "orange", "purple", "pink", "white", "black", "gray", "brown", "cyan"]
SHAPES = ["circle", "square", "triangle", "star", "hexagon", "heart", "cross", "diamond"]
PLURAL = {"cross": "crosses"}
SIZES = ["small", "large", "big", "tiny"]
POSITIONS = ["on the left", "on the right", "at the top", "at the bottom", "in the centre", "in the middle"]
COUNTS = {1: "one", 2: "two", 3: "three"}
FRAMES = ["{}", "a photo of {}", "an image of {}", "there is {}", "a picture showing {}", "{} on a plain background"]
EVERYDAY = """
dog cat horse bird fish cow sheep goat pig duck mouse rabbit lion tiger bear wolf fox deer
monkey elephant giraffe camel snake frog turtle whale dolphin shark owl eagle parrot bee ant
house car bus train plane boat bicycle truck road bridge river lake sea mountain hill forest
tree flower grass leaf garden park city street market shop school church castle tower wall
window door roof chair table bed sofa lamp clock mirror book pen paper cup glass bottle plate
bowl spoon fork knife bread cake apple banana orange lemon cherry grape tomato potato carrot
cheese egg milk coffee tea water juice soup rice pizza sandwich cookie
man woman child boy girl baby family friend teacher doctor farmer player singer dancer
running walking jumping sitting standing sleeping eating drinking reading writing playing
swimming flying climbing cooking painting singing smiling laughing waiting looking holding
happy sad old young new bright dark shiny wooden metal plastic soft hard warm cold wet dry
beautiful quiet busy empty full open closed heavy light long short round flat sharp smooth
morning evening night sunset sunrise winter summer spring autumn rain snow wind cloud sky sun
moon light shadow fire smoke storm beach sand stone rock island desert field farm village
with and the near under over behind beside between inside outside across along through
very quite rather slightly
""".split()
ODD = [
    "café au lait", "a naïve painting", "don't touch the red square", "it's 3 o'clock",
    "an x-ray of a hand", "rock & roll", "50% off", "c++ code on a screen", "東京 at night",
    "😀 a smiling face", "two blue circles!", "three yellow stars, left to right.",
    "The RED circle", "e-mail", "well-known shapes", "(a small square)",
]
ODD_STRINGS = [
    "", " ", "zebra quokka", "xylophone", "RED CIRCLE", "  two\tblue\n squares  ",
    "!!!???", "a,b;c:d", "1234567890", "résumé", "über", "🦄", "北京", "\u0007bell",
    "zero\u200bwidth", "<|endoftext|>", "a <|startoftext|> b", "<|ENDOFTEXT|>", "'s 'll 've",
    "circlesquare", "squares", "redder", "bluegreen", "ALL CAPS TRIANGLE", "-leading hyphen",
    "a " * 40, " ".join(COLOURS * 3),
]


def generate_corpus(rng: random.Random, n_scenes: int = 300, n_everyday: int = 220) -> list[str]:
    lines = []
    for _ in range(n_scenes):
        n = rng.choice([1, 2, 3])
        colour, shape = rng.choice(COLOURS), rng.choice(SHAPES)
        noun = shape if n == 1 else PLURAL.get(shape, shape + "s")
        count = rng.choice(["a", COUNTS[1]]) if n == 1 else COUNTS[n]
        if count == "a" and colour[0] in "aeiou":
            count = "an"
        parts = [count]
        if rng.random() < 0.5:
            parts.append(rng.choice(SIZES))
        parts += [colour, noun]
        if rng.random() < 0.6:
            parts.append(rng.choice(POSITIONS))
        lines.append(rng.choice(FRAMES).format(" ".join(parts)))
    words = sorted(set(EVERYDAY))
    for _ in range(n_everyday):
        lines.append(" ".join(rng.sample(words, rng.randint(3, 8))))
    lines += ODD
    return lines


def run(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"command failed: {' '.join(cmd)}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.stdout


def clipkit_ids(binary: Path, model: Path, texts: list[str]) -> list[list[int]]:
    args = [str(binary), "tokenize", "--model", str(model), "--json"]
    for t in texts:
        args += ["--text", t]
    return [entry["ids"] for entry in json.loads(run(args))["texts"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    parser.add_argument("--writer", type=Path, default=Path("target/release/examples/write_random_model"))
    parser.add_argument("--clipkit", type=Path, default=Path("target/release/clipkit"))
    parser.add_argument("--regenerate-corpus", action="store_true")
    parser.add_argument("--write", action="store_true", help="write the reference ids fixture")
    args = parser.parse_args()

    corpus_path = args.fixtures / "fitted" / "captions.txt"
    if args.regenerate_corpus:
        corpus_path.parent.mkdir(parents=True, exist_ok=True)
        corpus_path.write_text("\n".join(generate_corpus(random.Random(SEED))) + "\n", encoding="utf-8")
    corpus = [line for line in corpus_path.read_text(encoding="utf-8").split("\n") if line.strip()]

    work = Path(tempfile.mkdtemp(prefix="fitted-tokenizer-"))
    try:
        model = work / "model"
        written = json.loads(run([str(args.writer), "--captions", str(corpus_path), "--out", str(model)]))
        context = json.loads((model / "config.json").read_text())["text_config"]["max_position_embeddings"]
        files_only = work / "vocab-and-merges"
        files_only.mkdir()
        for name in ["vocab.json", "merges.txt", "tokenizer_config.json"]:
            shutil.copy(model / name, files_only / name)

        from_json = CLIPTokenizer.from_pretrained(model)
        from_files = CLIPTokenizer.from_pretrained(files_only)
        fast = CLIPTokenizerFast.from_pretrained(model)
        raw = tokenizers.Tokenizer.from_file(str(model / "tokenizer.json"))
        openai = OpenAIReferenceTokenizer(model)

        def truncated(ids: list[int]) -> list[int]:
            return ids if len(ids) <= context else ids[: context - 1] + [ids[-1]]

        texts = corpus + ODD_STRINGS
        readers = {
            "CLIPTokenizer(tokenizer.json)": lambda t: from_json(t, truncation=True, max_length=context)["input_ids"],
            "CLIPTokenizer(vocab.json+merges.txt)": lambda t: from_files(t, truncation=True, max_length=context)["input_ids"],
            "CLIPTokenizerFast": lambda t: fast(t, truncation=True, max_length=context)["input_ids"],
            "tokenizers.Tokenizer": lambda t: truncated(raw.encode(t).ids),
        }
        reference = {t: readers["CLIPTokenizer(tokenizer.json)"](t) for t in texts}
        mine = dict(zip(texts, clipkit_ids(args.clipkit, model, texts)))
        failures = []
        for text in texts:
            want = reference[text]
            for name, read in readers.items():
                if read(text) != want:
                    failures.append(f"{name} {text!r}: {read(text)} vs {want}")
            if mine[text] != want:
                failures.append(f"clipkit {text!r}: {mine[text]} vs {want}")
        for text in corpus:
            ref = truncated([written["bos_token_id"]] + openai.encode(text) + [written["eos_token_id"]])
            if ref != reference[text]:
                failures.append(f"OpenAI reference BPE {text!r}: {ref} vs {reference[text]}")
        backend = from_json.backend_tokenizer
        words = sorted({w for t in corpus
                        for w, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(t))})
        split_words = [w for w in words if len(backend.model.tokenize(w)) != 1]
        if split_words:
            failures.append(f"corpus words that are not one token: {split_words[:10]}")
        unknown = sum(ids.count(written["eos_token_id"]) - 1 for ids in reference.values())

        print(f"transformers {transformers.__version__}, tokenizers {tokenizers.__version__}; "
              f"CLIPTokenizerFast is CLIPTokenizer: {CLIPTokenizerFast is CLIPTokenizer}")
        print(f"corpus: {len(corpus)} captions, {len(words)} distinct words, each one token; vocab_size "
              f"{written['vocab_size']} (bos {written['bos_token_id']}, eos {written['eos_token_id']})")
        print(f"{len(texts)} texts x {len(readers) + 1} readers (+ OpenAI BPE on the corpus): "
              f"{len(failures)} disagreements; unknown characters mapped to <|endoftext|>: {unknown}")
        for f in failures[:20]:
            print("  " + f)
        if failures:
            sys.exit(1)
        if args.write:
            doc = {
                "description": "ids of CLIPTokenizer.from_pretrained on a folder written by "
                               "examples/write_random_model from fitted/captions.txt (default FitOptions, "
                               "context_length below), truncation=True; identical for every reader listed.",
                "readers": list(readers) + ["clipkit tokenize", "OpenAI reference BPE (corpus only)"],
                "versions": {"transformers": transformers.__version__, "tokenizers": tokenizers.__version__},
                "context_length": context,
                "vocab_size": written["vocab_size"],
                "bos_token_id": written["bos_token_id"],
                "eos_token_id": written["eos_token_id"],
            }
            cases = [json.dumps({"text": t, "ids": reference[t], "in_corpus": i < len(corpus)}, ensure_ascii=False)
                     for i, t in enumerate(texts)]
            head = json.dumps(doc, ensure_ascii=False, indent=1)[:-2]
            out = args.fixtures / "reference" / "fitted_tokenizer_cases.json"
            out.write_text(head + ',\n "cases": [\n  ' + ",\n  ".join(cases) + "\n ]\n}\n", encoding="utf-8")
            print(f"wrote {out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

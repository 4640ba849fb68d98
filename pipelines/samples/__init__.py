"""``speechgpt corpus``: small real corpora in the four on-disk formats, spoken by TTS voices.

Deterministic: the same ``--utterances`` and ``--seed`` write the same bytes. Each corpus
folder is built in a temporary folder and moved into place whole.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import tempfile
import time
from pathlib import Path

from pipelines.samples import commonvoice, gigaspeech, librilight, librispeech, moss
from speechinstruct.texts import sentences

FOLDERS = ("LibriSpeech", "librilight", "cv-corpus", "GigaSpeech", "moss")
# corpus -> (its root under the output folder, the split a reader takes), as readers need them
LAYOUT: dict[str, tuple[str, str | None]] = {
    "librispeech": ("LibriSpeech", None),
    "librilight": ("librilight", "small"),
    "commonvoice": ("cv-corpus/en", "validated"),
    "gigaspeech": ("GigaSpeech", None),
}
DEFAULT_UTTERANCES = 40


def make_corpora(out: str | Path, utterances: int = DEFAULT_UTTERANCES, seed: int = 0) -> dict:
    """Write all sample corpora under ``out``; returns counts and what readers should find."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pool = list(sentences())
    random.Random(seed).shuffle(pool)
    texts = itertools.cycle(pool)  # each writer takes the sentences it needs, in turn
    expected: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(dir=out, prefix=".corpus-") as tmp:
        staging = Path(tmp)
        steps = (
            ("librispeech", lambda: librispeech.write(staging, texts, utterances, seed)),
            ("librilight", lambda: librilight.write(staging, texts, seed)),
            ("commonvoice", lambda: commonvoice.write(staging, texts, utterances, seed)),
            ("gigaspeech", lambda: gigaspeech.write(staging, texts, utterances, seed)),
            ("moss", lambda: moss.write(staging)),
        )
        for name, step in steps:
            start = time.perf_counter()
            expected[name] = step()
            print(
                f"corpus: {name:<12} {len(expected[name]):>4} items  "
                f"{time.perf_counter() - start:5.1f}s",
                flush=True,
            )
        for folder in FOLDERS:
            shutil.rmtree(out / folder, ignore_errors=True)
            (staging / folder).rename(out / folder)
    info = {
        "utterances": utterances,
        "seed": seed,
        "counts": {name: len(items) for name, items in expected.items()},
    }
    (out / "corpus.json").write_text(json.dumps(info, indent=1) + "\n")
    return {**info, "expected": expected}


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt corpus", description=__doc__)
    parser.add_argument("--out", required=True, help="folder to write the corpora into")
    parser.add_argument(
        "--utterances",
        type=int,
        default=DEFAULT_UTTERANCES,
        help="utterances per corpus (LibriSpeech, Common Voice, GigaSpeech)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.utterances < 4:
        parser.error("--utterances must be at least 4")
    info = make_corpora(args.out, args.utterances, args.seed)
    print(f"corpus: wrote {', '.join(FOLDERS)} under {args.out}")
    return info

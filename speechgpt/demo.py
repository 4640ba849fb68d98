"""``speechgpt demo``: the main job on the embedded default, one step after another.

Steps so far: write the sample corpora, then read and decode all four, printing what was
read and rejected by reason. A second run reuses finished steps.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from pipelines.samples import DEFAULT_UTTERANCES, make_corpora
from pipelines.survey import survey

CORPORA = (  # corpus, folder under the demo dir, split
    ("librispeech", "LibriSpeech", None),
    ("librilight", "librilight", "small"),
    ("commonvoice", "cv-corpus/en", "validated"),
    ("gigaspeech", "GigaSpeech", None),
)


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="speechgpt demo", description=__doc__)
    parser.add_argument("--out", default=os.environ.get("DEMO_DIR", "demo-out"))
    parser.add_argument("--utterances", type=int, default=DEFAULT_UTTERANCES)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    corpora = out / "corpora"

    start = time.perf_counter()
    marker = corpora / "corpus.json"
    wanted = {"utterances": args.utterances, "seed": args.seed}
    done = marker.exists() and {k: json.loads(marker.read_text())[k] for k in wanted} == wanted
    if done:
        print(f"[corpus] reusing {corpora}")
    else:
        make_corpora(corpora, args.utterances, args.seed)
    print(f"[corpus] {time.perf_counter() - start:.1f}s -> {corpora}")

    start = time.perf_counter()
    for corpus, folder, split in CORPORA:
        print("[read] " + survey(corpus, str(corpora / folder), split).line(), flush=True)
    print(f"[read] {time.perf_counter() - start:.1f}s")

"""Text shipped with the project: sample sentences and sample chats (project-written)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources


def _data(name: str) -> str:
    return resources.files("speechinstruct").joinpath("data", name).read_text(encoding="utf-8")


@cache
def sentences() -> tuple[str, ...]:
    """The sample sentence list (≥ 500 distinct sentences) the sample corpora speak."""
    return tuple(line.strip() for line in _data("sentences.txt").splitlines() if line.strip())


@cache
def chats() -> tuple[tuple[tuple[str, str], ...], ...]:
    """Sample chats: each a tuple of (human, assistant) turns."""
    out = []
    for line in _data("chats.jsonl").splitlines():
        if line.strip():
            turns = json.loads(line)["turns"]
            out.append(tuple((t["human"], t["assistant"]) for t in turns))
    return tuple(out)


@cache
def eval_pairs() -> tuple[dict, ...]:
    """SpeechInstruct evaluation pairs (§3.3): 6 roles × 10 instruction/response pairs."""
    return tuple(
        json.loads(line) for line in _data("eval_pairs.jsonl").splitlines() if line.strip()
    )

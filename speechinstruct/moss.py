"""moss-002-sft-data chats: ``[Human]: … <eoh> [MOSS]: … <eoa>`` turns in ``plain_text``."""

from __future__ import annotations

import re

_TURN = re.compile(r"\[Human\]:(.*?)<eoh>\s*\[MOSS\]:(.*?)(?:<eoa>|$)", re.DOTALL)


def parse_plain_text(plain_text: str) -> list[tuple[str, str]]:
    """The ``(human, assistant)`` turns of one chat; ValueError when there are none."""
    turns = [(" ".join(h.split()), " ".join(a.split())) for h, a in _TURN.findall(plain_text)]
    if not turns or not all(h and a for h, a in turns):
        raise ValueError(f"no complete [Human]/[MOSS] turn in {plain_text[:80]!r}")
    return turns


def is_english(text: str, min_ascii_letters: float = 0.9) -> bool:
    """Mostly ASCII letters among the letters: a cheap, deterministic language check."""
    letters = [c for c in text if c.isalpha()]
    return bool(letters) and sum(c.isascii() for c in letters) / len(letters) >= min_ascii_letters

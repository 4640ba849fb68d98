"""Corpus readers: corpus root (+ split/subset) → a stream of ``Utterance`` or ``Reject``."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.sources import commonvoice, gigaspeech, librilight, librispeech, manifest
from pipelines.sources.base import Record, Records

READERS: dict[str, Callable[..., Records]] = {
    "librispeech": librispeech.read,
    "librilight": librilight.read,
    "commonvoice": commonvoice.read,
    "gigaspeech": gigaspeech.read,
    "manifest": manifest.read,
}


def read(corpus: str, root: str, split: str | None = None) -> Records:
    """Records of ``corpus`` under ``root``; see each reader for what ``split`` names."""
    if corpus not in READERS:
        raise ValueError(f"unknown corpus {corpus!r}; choose from {', '.join(READERS)}")
    return READERS[corpus](root, split)


__all__ = ["READERS", "Record", "Records", "read"]

"""Corpus readers: corpus root (+ split/subset) → a stream of ``Utterance`` or ``Reject``."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.records import Utterance
from pipelines.sources import commonvoice, gigaspeech, librilight, librispeech, manifest
from pipelines.sources.base import Record, Records, reject
from schemas import reasons

READERS: dict[str, Callable[..., Records]] = {
    "librispeech": librispeech.read,
    "librilight": librilight.read,
    "commonvoice": commonvoice.read,
    "gigaspeech": gigaspeech.read,
    "manifest": manifest.read,
}


def read(corpus: str, root: str, split: str | None = None) -> Records:
    """Records of ``corpus`` under ``root``; see each reader for what ``split`` names.

    Utterance ids are unique: a later utterance with an id already read (metadata listing a
    clip twice, two manifest rows naming one id) becomes a ``bad_metadata`` reject.
    """
    if corpus not in READERS:
        raise ValueError(f"unknown corpus {corpus!r}; choose from {', '.join(READERS)}")
    return _unique_ids(corpus, READERS[corpus](root, split))


def _unique_ids(corpus: str, records: Records) -> Records:
    seen: set[str] = set()
    for record in records:
        if isinstance(record, Utterance) and record.id in seen:
            detail = "id repeated: an earlier utterance has this id"
            yield reject(corpus, record.id, reasons.BAD_METADATA, detail, record.source)
            continue
        if isinstance(record, Utterance):
            seen.add(record.id)
        yield record


__all__ = ["READERS", "Record", "Records", "read"]

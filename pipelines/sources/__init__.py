"""Corpus readers: corpus root (+ split/subset) → a stream of ``Utterance`` or ``Reject``."""

from __future__ import annotations

from collections.abc import Iterable

from pipelines.records import Utterance
from pipelines.sources.base import Record, Records, Source, reject
from pipelines.sources.commonvoice import CommonVoice
from pipelines.sources.gigaspeech import GigaSpeech
from pipelines.sources.librilight import LibriLight
from pipelines.sources.librispeech import LibriSpeech
from pipelines.sources.manifest import Manifest
from schemas import reasons

READERS: dict[str, type[Source]] = {
    "librispeech": LibriSpeech,
    "librilight": LibriLight,
    "commonvoice": CommonVoice,
    "gigaspeech": GigaSpeech,
    "manifest": Manifest,
}
REPEATED_ID = "id repeated: another utterance has this id"


def source(corpus: str, root: str, split: str | None = None) -> Source:
    """The ``Source`` of ``corpus`` under ``root``; see each reader for what ``split`` names."""
    if corpus not in READERS:
        raise ValueError(f"unknown corpus {corpus!r}; choose from {', '.join(READERS)}")
    return READERS[corpus](root, split)


def _order(u: Utterance):
    s = u.source
    return s.path, s.start_s or 0.0, s.end_s or 0.0, u.text or ""


def keep_one(id_: str, utterances: Iterable[Utterance]) -> Records:
    """Of utterances sharing an id, keep the first by source (path, start, end): the same
    one whatever order they arrive in; the others become ``bad_metadata`` rejects."""
    first, *others = sorted(utterances, key=_order)
    yield first
    yield from map(_repeated, others)


def _repeated(utterance: Utterance):
    return reject(
        utterance.corpus, utterance.id, reasons.BAD_METADATA, REPEATED_ID, utterance.source
    )


def read(corpus: str, root: str, split: str | None = None) -> Records:
    """Every record of a corpus in reading order, parsed in this process (tests, ``survey``);
    ids are made unique as in the pipeline (``keep_one``). Jobs read inside the pipeline
    (``steps.read``)."""
    records = list(source(corpus, root, split).records())
    kept: dict[str, Utterance] = {}
    for record in records:
        if isinstance(record, Utterance):
            best = kept.get(record.id)
            kept[record.id] = record if best is None else min(best, record, key=_order)
    for record in records:
        repeated = isinstance(record, Utterance) and record is not kept[record.id]
        yield _repeated(record) if repeated else record


__all__ = ["READERS", "Record", "Records", "Source", "keep_one", "read", "source"]

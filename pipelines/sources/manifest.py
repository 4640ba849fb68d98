"""A generic manifest for any other corpus: ``<root>/<split>.tsv`` or ``<root>/<split>.jsonl``.

Columns/keys: ``path`` (relative to the root, required), ``text`` (JSONL: null or absent
for untranscribed audio), ``speaker``, and optional ``id``, ``start``, ``end`` (seconds).
Without an ``id``, the id is the path (``/`` → ``_``, no suffix), plus ``_<start ms>_<end
ms>`` for a segment, so that segments of one file differ. The manifest is streamed inside
the job; audio files are checked at decode time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import PathEscape, Records, Source, inside, reject, tsv_table
from schemas import reasons
from speechinstruct import storage

CORPUS = "manifest"
DEFAULT_SPLIT = "train"


def _rows(file: str) -> Iterator[tuple[str, dict | None]]:
    """``(where, row)`` pairs; ``row`` is None where a line cannot be parsed."""
    file_name = storage.name(file)
    with storage.text_stream(file) as f:
        if file.endswith(".jsonl"):
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        row = None
                    yield f"{file_name}:{lineno}", row if isinstance(row, dict) else None
        else:
            header, rows = tsv_table(f)
            for lineno, cells in rows:
                ok = len(cells) == len(header)
                yield f"{file_name}:{lineno}", dict(zip(header, cells, strict=True)) if ok else None


def find(root: str, split: str | None) -> str:
    """The manifest file: ``root`` itself if a file, else ``root/<split>.{tsv,jsonl}``."""
    root = storage.normalize(root)
    if root.endswith((".tsv", ".jsonl")) and storage.exists(root):
        return root
    split = split or DEFAULT_SPLIT
    for suffix in (".tsv", ".jsonl"):
        if storage.exists(storage.join(root, f"{split}{suffix}")):
            return storage.join(root, f"{split}{suffix}")
    raise FileNotFoundError(f"no manifest {split}.tsv or {split}.jsonl in {root}")


class Manifest(Source):
    """One manifest file (``root`` itself, or ``root/<split>.tsv|.jsonl``)."""

    corpus = CORPUS

    def __init__(self, root: str, split: str | None = None):
        self.file = find(root, split)
        super().__init__(storage.parent(self.file), split or storage.name(self.file).split(".")[0])

    def patterns(self) -> list[str]:
        return [self.file]

    def parse(self, file: str, paths: list[str]) -> Records:
        for where, row in _rows(file):
            yield _record(row, where, self.root, self.split)


def read(root: str, split: str | None = None) -> Records:
    return Manifest(root, split).records()


def seconds(value: object) -> float | None:
    """A ``start``/``end`` cell as seconds: None when absent; ValueError unless a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number of seconds: {value!r}")
    return float(value)


def _record(row: dict | None, where: str, base: str, split: str):
    if row is None or not isinstance(row.get("path"), str) or not row["path"]:
        return reject(CORPUS, where, reasons.BAD_METADATA, f"{where}: no 'path'")
    id_ = str(row.get("id") or _stem(row["path"]).replace("/", "_"))
    try:
        start, end = seconds(row.get("start")), seconds(row.get("end"))
        path = inside(base, row["path"])
    except ValueError as e:
        reason = reasons.PATH_ESCAPE if isinstance(e, PathEscape) else reasons.BAD_METADATA
        return reject(CORPUS, id_, reason, f"{where}: {e}")
    if not row.get("id") and (start is not None or end is not None):
        id_ += "".join(
            f"_{round(t * 1000)}" if t is not None and math.isfinite(t) else "_"
            for t in (start, end)
        )
    finite = all(t is None or math.isfinite(t) for t in (start, end))
    source = AudioSource(path, start, end) if finite else AudioSource(path)
    text = row.get("text")
    if text is not None:
        text = " ".join(str(text).split())
        if not text:
            return reject(CORPUS, id_, reasons.EMPTY_TEXT, f"{where}: empty text", source)
        if "\ufffd" in text:
            return reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: text not UTF-8", source)
    lo = start or 0.0
    if not finite or lo < 0 or (end is not None and end <= lo):
        return reject(CORPUS, id_, reasons.BAD_SEGMENT, f"{where}: [{start}, {end}]", source)
    speaker = str(row.get("speaker") or "unknown")
    return Utterance(id_, CORPUS, split, speaker, text, source)


def _stem(path: str) -> str:
    """``a/b.wav`` → ``a/b``: the relative path without its suffix."""
    head, _, tail = path.replace("\\", "/").rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail.lstrip(".") else tail
    return f"{head}/{stem}" if head else stem

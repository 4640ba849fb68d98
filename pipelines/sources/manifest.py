"""A generic manifest for any other corpus: ``<root>/<split>.tsv`` or ``<root>/<split>.jsonl``.

Columns/keys: ``path`` (relative to the root, required), ``text`` (JSONL: null or absent
for untranscribed audio), ``speaker``, and optional ``id``, ``start``, ``end`` (seconds).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import PathEscape, Records, inside, reject
from schemas import reasons

CORPUS = "manifest"
DEFAULT_SPLIT = "train"


def _rows(file: Path) -> Iterator[tuple[str, dict | None]]:
    """``(where, row)`` pairs; ``row`` is None where a line cannot be parsed."""
    with file.open(newline="", encoding="utf-8", errors="replace") as f:
        if file.suffix == ".jsonl":
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        row = None
                    yield f"{file.name}:{lineno}", row if isinstance(row, dict) else None
        else:
            rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            header = next(rows, [])
            for lineno, cells in enumerate(rows, 2):
                ok = len(cells) == len(header)
                yield f"{file.name}:{lineno}", dict(zip(header, cells, strict=True)) if ok else None


def find(root: str, split: str | None) -> Path:
    """The manifest file: ``root`` itself if a file, else ``root/<split>.{tsv,jsonl}``."""
    if Path(root).is_file():
        return Path(root)
    split = split or DEFAULT_SPLIT
    for suffix in (".tsv", ".jsonl"):
        if (Path(root) / f"{split}{suffix}").is_file():
            return Path(root) / f"{split}{suffix}"
    raise FileNotFoundError(f"no manifest {split}.tsv or {split}.jsonl in {root}")


def read(root: str, split: str | None = None) -> Records:
    file = find(root, split)
    base = file.parent
    split = split or file.stem
    for where, row in _rows(file):
        yield _record(row, where, base, split)


def _record(row: dict | None, where: str, base: Path, split: str):
    if row is None or not isinstance(row.get("path"), str) or not row["path"]:
        return reject(CORPUS, where, reasons.BAD_METADATA, f"{where}: no 'path'")
    id_ = str(row.get("id") or Path(row["path"]).with_suffix("").as_posix().replace("/", "_"))
    try:
        start = float(row["start"]) if row.get("start") not in (None, "") else None
        end = float(row["end"]) if row.get("end") not in (None, "") else None
        path = inside(base, row["path"])
    except ValueError as e:
        reason = reasons.PATH_ESCAPE if isinstance(e, PathEscape) else reasons.BAD_METADATA
        return reject(CORPUS, id_, reason, f"{where}: {e}")
    source = AudioSource(str(path), start, end)
    text = row.get("text")
    if text is not None:
        text = " ".join(str(text).split())
        if not text:
            return reject(CORPUS, id_, reasons.EMPTY_TEXT, f"{where}: empty text", source)
    if start is not None and end is not None and end <= start:
        return reject(CORPUS, id_, reasons.BAD_SEGMENT, f"{where}: [{start}, {end}]", source)
    if not path.is_file():
        return reject(CORPUS, id_, reasons.MISSING_AUDIO, f"{where}: no {row['path']}", source)
    speaker = str(row.get("speaker") or "unknown")
    return Utterance(id_, CORPUS, split, speaker, text, source)

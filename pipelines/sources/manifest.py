"""A generic manifest for any other corpus: ``<root>/<split>.tsv`` or ``<root>/<split>.jsonl``.

Columns/keys: ``path`` (relative to the root, required), ``text`` (JSONL: null or absent
for untranscribed audio), ``speaker``, and optional ``id``, ``start``, ``end`` (seconds).
Without an ``id``, the id is the path (``/`` → ``_``, no suffix), plus ``_<start ms>_<end
ms>`` for a segment, so that segments of one file differ.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import PathEscape, Records, inside, open_text, reject, tsv_table
from schemas import reasons

CORPUS = "manifest"
DEFAULT_SPLIT = "train"


def _rows(file: Path) -> Iterator[tuple[str, dict | None]]:
    """``(where, row)`` pairs; ``row`` is None where a line cannot be parsed."""
    with open_text(file) as f:
        if file.suffix == ".jsonl":
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    try:
                        row = json.loads(line)
                    except ValueError:
                        row = None
                    yield f"{file.name}:{lineno}", row if isinstance(row, dict) else None
        else:
            header, rows = tsv_table(f)
            for lineno, cells in rows:
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


def seconds(value: object) -> float | None:
    """A ``start``/``end`` cell as seconds: None when absent; ValueError unless a number."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a number of seconds: {value!r}")
    return float(value)


def _record(row: dict | None, where: str, base: Path, split: str):
    if row is None or not isinstance(row.get("path"), str) or not row["path"]:
        return reject(CORPUS, where, reasons.BAD_METADATA, f"{where}: no 'path'")
    id_ = str(row.get("id") or Path(row["path"]).with_suffix("").as_posix().replace("/", "_"))
    try:
        start, end = seconds(row.get("start")), seconds(row.get("end"))
        path = inside(base, row["path"])
    except ValueError as e:
        reason = reasons.PATH_ESCAPE if isinstance(e, PathEscape) else reasons.BAD_METADATA
        return reject(CORPUS, id_, reason, f"{where}: {e}")
    if not row.get("id") and (start is not None or end is not None):
        id_ += "".join(f"_{round(t * 1000)}" if t is not None and math.isfinite(t) else "_"
                       for t in (start, end))  # fmt: skip
    finite = all(t is None or math.isfinite(t) for t in (start, end))
    source = AudioSource(str(path), start, end) if finite else AudioSource(str(path))
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
    if not path.is_file():
        return reject(CORPUS, id_, reasons.MISSING_AUDIO, f"{where}: no {row['path']}", source)
    speaker = str(row.get("speaker") or "unknown")
    return Utterance(id_, CORPUS, split, speaker, text, source)

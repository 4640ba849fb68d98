"""What every corpus reader shares: the record stream type and path confinement."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TextIO

from pipelines.records import AudioSource, Reject, Utterance
from schemas import reasons

Record = Utterance | Reject
Records = Iterator[Record]
STAGE = "read"
csv.field_size_limit(1 << 20)  # csv's 128 KiB default would stop a reader at one long cell


class PathEscape(ValueError):
    """A path named by corpus metadata points outside the corpus root."""


def inside(root: Path, relative: str) -> Path:
    """``root / relative``, refusing absolute paths and ``..`` that leave ``root``."""
    candidate = Path(os.path.normpath(root / relative))
    base = Path(os.path.normpath(root))
    if Path(relative).is_absolute() or not candidate.is_relative_to(base):
        raise PathEscape(f"{relative!r} escapes {str(root)!r}")
    return candidate


def reject(
    corpus: str, id_: str, reason: str, detail: str, source: AudioSource | None = None
) -> Reject:
    assert reason in reasons.REASONS, reason
    return Reject(id=id_, corpus=corpus, source=source, stage=STAGE, reason=reason, detail=detail)


def require_dir(path: Path, what: str) -> Path:
    """Raise a clear error when the user points a reader at the wrong folder."""
    if not path.is_dir():
        parent = path.parent
        found = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        hint = f"; found: {', '.join(found)}" if found else ""
        raise FileNotFoundError(f"{what} not found: {path}{hint}")
    return path


def split_folders(
    root: str, split: str | None, what: str, is_split: Callable[[Path], bool],
    all_splits: Callable[[str], list[str]],
) -> tuple[Path, list[str]]:  # fmt: skip
    """``(parent, names)`` of the split folders to read: ``split``, every split under
    ``root``, or ``root`` itself when it is a split folder (``is_split``)."""
    require_dir(Path(root), f"{what} folder")
    if split is None and is_split(Path(root)):
        return Path(root).parent, [Path(root).name]
    names = [split] if split else all_splits(root)
    if not names:
        raise FileNotFoundError(f"no {what} split folders (<split>/<speaker>/…) under {root}")
    return Path(root), names


def open_text(path: Path) -> TextIO:
    """A corpus text file: UTF-8 with or without a BOM, undecodable bytes as U+FFFD (for the
    reader to reject), newlines left to ``csv``."""
    return path.open(newline="", encoding="utf-8-sig", errors="replace")


def tsv_table(f: TextIO) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """``(header, (line number, cells)…)`` of a tab-separated file with a header line, read
    as corpora write them: unquoted (real sentences hold unbalanced quotes), blank lines
    skipped."""
    rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(rows, [])
    return header, ((n, cells) for n, cells in enumerate(rows, 2) if any(c.strip() for c in cells))

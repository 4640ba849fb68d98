"""What every corpus reader shares: the ``Source`` shape, the record stream, path confinement.

A corpus is read as metadata files: a ``Source`` names the globs that find them
(``patterns``), which files are parsed together (``key``: a LibriSpeech chapter folder, a
LibriLight file stem, or each file alone) and how one such group becomes utterances and
rejects (``parse``). The pipeline matches, groups and parses inside the job
(``pipelines.steps.read``); ``records`` does the same in this process for tests and surveys.
Audio files are not checked here: a missing one is a ``missing_audio`` reject at decode time.
"""

from __future__ import annotations

import csv
import posixpath
from collections import defaultdict
from collections.abc import Iterator
from typing import TextIO

from pipelines.records import AudioSource, Reject, Utterance
from schemas import reasons
from speechinstruct import storage

Record = Utterance | Reject
Records = Iterator[Record]
STAGE = "read"
csv.field_size_limit(1 << 20)  # csv's 128 KiB default would stop a reader at one long cell


class PathEscape(ValueError):
    """A path named by corpus metadata points outside the corpus root."""


class Source:
    """One corpus under a root (local path or URI), optionally one split of it."""

    corpus = ""

    def __init__(self, root: str, split: str | None = None):
        self.root, self.split = storage.normalize(root).rstrip("/"), split

    def patterns(self) -> list[str]:
        """Globs of the metadata files (``*`` stays within a folder)."""
        raise NotImplementedError

    def key(self, path: str) -> str:
        """Files with the same key are parsed together; by default each file alone."""
        return path

    def parse(self, key: str, paths: list[str]) -> Records:
        raise NotImplementedError

    def check(self) -> None:
        """Fail early, in the driver, when no metadata file matches (a wrong root or split);
        looks at one match per pattern, never lists the corpus."""
        if not any(storage.match(p, limit=1) for p in self.patterns()):
            found = storage.children(self.root)[:20]
            hint = f"; found: {', '.join(found)}" if found else " (empty or missing)"
            split = f" split {self.split!r}" if self.split else ""
            raise FileNotFoundError(
                f"no {self.corpus}{split} files under {self.root}: looked for "
                f"{', '.join(self.patterns())}{hint}"
            )

    def records(self) -> Records:
        """Every record, parsed in this process in key order (tests, ``survey``)."""
        self.check()
        groups: dict[str, list[str]] = defaultdict(list)
        for pattern in self.patterns():
            for path in storage.match(pattern):
                groups[self.key(path)].append(path)
        for key in sorted(groups):
            yield from self.parse(key, sorted(groups[key]))


def inside(root: str, relative: str) -> str:
    """``root/relative``, refusing absolute paths and ``..`` that leave ``root``."""
    clean = posixpath.normpath(relative.replace("\\", "/"))
    if posixpath.isabs(relative) or "://" in relative or clean == ".." or clean.startswith("../"):
        raise PathEscape(f"{relative!r} escapes {root!r}")
    return storage.join(root, *clean.split("/"))


def reject(
    corpus: str, id_: str, reason: str, detail: str, source: AudioSource | None = None
) -> Reject:
    assert reason in reasons.REASONS, reason
    return Reject(id=id_, corpus=corpus, source=source, stage=STAGE, reason=reason, detail=detail)


def tsv_table(f: TextIO) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """``(header, (line number, cells)…)`` of a tab-separated file with a header line, read
    as corpora write them: unquoted (real sentences hold unbalanced quotes), blank lines
    skipped."""
    rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
    header = next(rows, [])
    return header, ((n, cells) for n, cells in enumerate(rows, 2) if any(c.strip() for c in cells))


def split_globs(root: str, split: str | None, depth: int, names: tuple[str, ...]) -> list[str]:
    """Globs for files ``depth`` folders below a split folder: under ``root/split``; or, with
    no split, under every split folder of ``root`` and under ``root`` itself taken as one."""
    stars = ["*"] * depth
    if split:
        return [storage.join(root, split, *stars, n) for n in names]
    return [storage.join(root, *more, *stars, n) for more in (["*"], []) for n in names]

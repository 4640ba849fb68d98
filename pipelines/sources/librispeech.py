"""LibriSpeech as downloaded: ``<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac``.

Transcripts are ``<spk>-<chapter>.trans.txt`` in each chapter folder, one ``ID TEXT``
line per utterance, upper case.
"""

from __future__ import annotations

import re
from pathlib import Path

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import Records, reject, require_dir, split_folders
from schemas import reasons

CORPUS = "librispeech"
ID = re.compile(r"(\d+)-(\d+)-(\d+)")


def splits(root: str) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and any(p.glob("*/*/")))


def is_split(folder: Path) -> bool:
    """Whether ``folder`` holds ``<spk>/<chapter>/`` folders with transcripts or audio."""
    return any(folder.glob("*/*/*.trans.txt")) or any(folder.glob("*/*/*.flac"))


def read(root: str, split: str | None = None) -> Records:
    """Utterances of one split folder (e.g. ``train-clean-100``), or of every split.

    ``root`` may also be a split folder itself (``LibriSpeech/dev-clean``).
    """
    parent, names = split_folders(root, split, "LibriSpeech", is_split, splits)
    for name in names:
        split_dir = require_dir(parent / name, "LibriSpeech split folder")
        for chapter in sorted(p for p in split_dir.glob("*/*") if p.is_dir()):
            yield from _read_chapter(chapter, name)


def _read_chapter(chapter: Path, split: str) -> Records:
    speaker, chapter_id = chapter.parent.name, chapter.name
    trans = chapter / f"{speaker}-{chapter_id}.trans.txt"
    flacs = {p.stem: p for p in chapter.glob("*.flac")}
    seen: set[str] = set()
    text = trans.read_bytes().decode("utf-8-sig", errors="replace") if trans.exists() else ""
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        id_, words = [*line.split(None, 1), ""][:2]
        where = f"{trans.name}:{lineno}"
        match = ID.fullmatch(id_)
        if not match or match.group(1, 2) != (speaker, chapter_id):
            yield reject(
                CORPUS,
                f"{speaker}-{chapter_id}:{lineno}",
                reasons.BAD_METADATA,
                f"{where}: not '<spk>-<chapter>-<utt> TEXT': {line[:80]!r}",
            )
            continue
        seen.add(id_)
        source = AudioSource(str(chapter / f"{id_}.flac"))
        if "\ufffd" in line:
            yield reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: not UTF-8 text", source)
        elif id_ not in flacs:
            yield reject(CORPUS, id_, reasons.MISSING_AUDIO, f"{where}: no {id_}.flac", source)
        elif not words.strip():
            yield reject(CORPUS, id_, reasons.EMPTY_TEXT, f"{where}: empty transcript", source)
        else:
            yield Utterance(id_, CORPUS, split, speaker, " ".join(words.split()), source)
    for stem in sorted(set(flacs) - seen):
        detail = f"no line in {trans.name}" if trans.exists() else f"no {trans.name}"
        yield reject(CORPUS, stem, reasons.BAD_METADATA, detail, AudioSource(str(flacs[stem])))

"""LibriSpeech as downloaded: ``<split>/<spk>/<chapter>/<spk>-<chapter>-<utt>.flac``.

Transcripts are ``<spk>-<chapter>.trans.txt`` in each chapter folder, one ``ID TEXT``
line per utterance, upper case. A chapter folder is parsed whole: its transcript and the
names of its FLAC files.
"""

from __future__ import annotations

import re

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import Records, Source, reject, split_globs
from schemas import reasons
from speechinstruct import storage

CORPUS = "librispeech"
ID = re.compile(r"(\d+)-(\d+)-(\d+)")


class LibriSpeech(Source):
    """One split folder (``train-clean-100``…) or every split; ``root`` may be a split."""

    corpus = CORPUS

    def patterns(self) -> list[str]:
        return split_globs(self.root, self.split, 2, ("*.trans.txt", "*.flac"))

    def key(self, path: str) -> str:
        return storage.parent(path)

    def parse(self, chapter: str, paths: list[str]) -> Records:
        split = storage.name(storage.parent(storage.parent(chapter)))
        speaker, chapter_id = storage.name(storage.parent(chapter)), storage.name(chapter)
        trans_name = f"{speaker}-{chapter_id}.trans.txt"
        flacs = {storage.name(p)[:-5]: p for p in paths if p.endswith(".flac")}
        has_trans = any(storage.name(p) == trans_name for p in paths)
        text = ""
        if has_trans:
            raw = storage.read_bytes(storage.join(chapter, trans_name))
            text = raw.decode("utf-8-sig", errors="replace")
        seen: set[str] = set()
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            id_, words = [*line.split(None, 1), ""][:2]
            where = f"{trans_name}:{lineno}"
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
            source = AudioSource(storage.join(chapter, f"{id_}.flac"))
            if "\ufffd" in line:
                yield reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: not UTF-8 text", source)
            elif id_ not in flacs:
                yield reject(CORPUS, id_, reasons.MISSING_AUDIO, f"{where}: no {id_}.flac", source)
            elif not words.strip():
                yield reject(CORPUS, id_, reasons.EMPTY_TEXT, f"{where}: empty transcript", source)
            else:
                yield Utterance(id_, CORPUS, split, speaker, " ".join(words.split()), source)
        for stem in sorted(set(flacs) - seen):
            detail = f"no line in {trans_name}" if has_trans else f"no {trans_name}"
            yield reject(CORPUS, stem, reasons.BAD_METADATA, detail, AudioSource(flacs[stem]))


def read(root: str, split: str | None = None) -> Records:
    return LibriSpeech(root, split).records()

"""LibriLight as downloaded: ``<subset>/<spk>/<book>/<name>.flac`` + same-stem ``.json``.

Files are chapter-long; the JSON's ``voice_activity`` ``[[start, end], …]`` (seconds)
cuts them. Consecutive voiced slices are packed until the next would pass the target
length; a slice longer than the target stands alone. Unlike libri-light's ``cut_by_vad``
(which counts voiced time only and joins the slices without their pauses), our segment is
the span from the first slice's start to the last one's end, pauses kept, at most the
target long. Ids ``<speaker folder>_<stem>_<n>``: the same book file read by two speakers
has the same stem. The file's length comes from the FLAC header (the JSON has none).
A file stem (its ``.json`` and ``.flac``) is parsed whole.
"""

from __future__ import annotations

import json
import math

import soundfile as sf

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import Records, Source, reject, split_globs
from schemas import reasons
from speechinstruct import storage

CORPUS = "librilight"
TARGET_S = 30.0


def pack(slices: list[tuple[float, float]], target_s: float) -> list[tuple[float, float]]:
    """Pack consecutive ``(start, end)`` slices into spans of at most ``target_s``."""
    spans: list[tuple[float, float]] = []
    for start, end in slices:
        if spans and end - spans[-1][0] <= target_s:
            spans[-1] = (spans[-1][0], end)
        else:
            spans.append((start, end))
    return spans


class LibriLight(Source):
    """One subset folder (``small``, ``medium``, ``large``) or every subset; ``root`` may be a
    subset folder itself."""

    corpus = CORPUS

    def __init__(self, root: str, split: str | None = None, target_s: float = TARGET_S):
        super().__init__(root, split)
        self.target_s = target_s

    def patterns(self) -> list[str]:
        return split_globs(self.root, self.split, 2, ("*.json", "*.flac"))

    def key(self, path: str) -> str:
        return path.rsplit(".", 1)[0]

    def parse(self, stem: str, paths: list[str]) -> Records:
        flac, meta_path = f"{stem}.flac", f"{stem}.json"
        book = storage.parent(stem)
        speaker_dir = storage.parent(book)
        subset = storage.name(storage.parent(speaker_dir))
        file_source = AudioSource(flac)
        base = f"{storage.name(speaker_dir)}_{storage.name(stem)}"
        meta_name = storage.name(meta_path)
        if flac not in paths:
            detail = f"{meta_name} has no .flac"
            yield reject(CORPUS, base, reasons.MISSING_AUDIO, detail, file_source)
            return
        if meta_path not in paths:
            yield reject(CORPUS, base, reasons.BAD_METADATA, f"no {meta_name}", file_source)
            return
        try:
            meta = json.loads(storage.read_text(meta_path))
            slices = [(float(s), float(e)) for s, e in meta["voice_activity"]]
            speaker = str(meta.get("speaker") or storage.name(speaker_dir))
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            detail = f"{meta_name}: bad voice_activity: {e}"
            yield reject(CORPUS, base, reasons.BAD_METADATA, detail, file_source)
            return
        if not slices:
            yield reject(
                CORPUS, base, reasons.SILENT, "voice_activity lists no speech", file_source
            )
            return
        length = flac_seconds(flac)
        good: list[tuple[float, float]] = []
        for i, (start, end) in enumerate(slices):
            finite = math.isfinite(start) and math.isfinite(end)
            late = length is not None and end > length + 0.1
            if not finite or end <= start or start < 0 or late:
                yield reject(
                    CORPUS,
                    f"{base}_vad{i}",
                    reasons.BAD_SEGMENT,
                    f"voice_activity[{i}] = [{start}, {end}] (file {length}s)",
                    AudioSource(flac, start if finite else None, end if finite else None),
                )
            else:
                good.append((start, end))
        for n, (start, end) in enumerate(pack(sorted(good), self.target_s)):
            yield Utterance(
                f"{base}_{n}", CORPUS, subset, speaker, None, AudioSource(flac, start, end)
            )


def flac_seconds(path: str) -> float | None:
    """The file's duration from its header, or None when unreadable (decode rejects it)."""
    try:
        with storage.open_read(path) as f, sf.SoundFile(f) as audio:
            return audio.frames / audio.samplerate
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None


def read(root: str, split: str | None = None, target_s: float = TARGET_S) -> Records:
    return LibriLight(root, split, target_s).records()

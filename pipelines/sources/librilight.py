"""LibriLight as downloaded: ``<subset>/<spk>/<book>/<name>.flac`` + same-stem ``.json``.

Files are chapter-long; the JSON's ``voice_activity`` ``[[start, end], …]`` (seconds)
cuts them. Consecutive voiced slices are packed until the next would pass the target
length; a slice longer than the target stands alone. Unlike libri-light's ``cut_by_vad``
(which counts voiced time only and joins the slices without their pauses), our segment is
the span from the first slice's start to the last one's end, pauses kept, at most the
target long. Ids ``<speaker folder>_<stem>_<n>``: the same book file read by two speakers
has the same stem. The file's length comes from the FLAC header (the JSON has none).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import soundfile as sf

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import Records, reject, require_dir, split_folders
from schemas import reasons

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


def has_books(folder: Path) -> bool:
    return any(folder.glob("*/*/*.flac"))


def subsets(root: str) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir())


def read(root: str, split: str | None = None, target_s: float = TARGET_S) -> Records:
    """Segments of one subset folder (``small``, ``medium``, ``large``), or of every subset.

    ``root`` may also be a subset folder itself (``librilight/small``).
    """
    parent, names = split_folders(root, split, "LibriLight", has_books, subsets)
    for name in names:
        subset = require_dir(parent / name, "LibriLight subset folder")
        stems = {p.with_suffix("") for p in subset.glob("*/*/*.flac")}
        stems |= {p.with_suffix("") for p in subset.glob("*/*/*.json")}
        for stem in sorted(stems):
            yield from _read_file(stem, name, target_s)


def _read_file(stem: Path, subset: str, target_s: float) -> Records:
    flac, meta_path = stem.with_suffix(".flac"), stem.with_suffix(".json")
    file_source = AudioSource(str(flac))
    base = f"{stem.parent.parent.name}_{stem.name}"
    if not flac.exists():
        yield reject(
            CORPUS, base, reasons.MISSING_AUDIO, f"{meta_path.name} has no .flac", file_source
        )
        return
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8-sig"))
        slices = [(float(s), float(e)) for s, e in meta["voice_activity"]]
        speaker = str(meta.get("speaker") or stem.parent.parent.name)
    except FileNotFoundError:
        yield reject(CORPUS, base, reasons.BAD_METADATA, f"no {meta_path.name}", file_source)
        return
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        yield reject(
            CORPUS, base, reasons.BAD_METADATA, f"{meta_path.name}: bad voice_activity: {e}",
            file_source,
        )  # fmt: skip
        return
    if not slices:
        yield reject(CORPUS, base, reasons.SILENT, "voice_activity lists no speech", file_source)
        return
    length = flac_seconds(flac)
    good: list[tuple[float, float]] = []
    for i, (start, end) in enumerate(slices):
        finite = math.isfinite(start) and math.isfinite(end)
        if not finite or end <= start or start < 0 or (length is not None and end > length + 0.1):
            yield reject(
                CORPUS,
                f"{base}_vad{i}",
                reasons.BAD_SEGMENT,
                f"voice_activity[{i}] = [{start}, {end}] (file {length}s)",
                AudioSource(str(flac), start if finite else None, end if finite else None),
            )
        else:
            good.append((start, end))
    for n, (start, end) in enumerate(pack(sorted(good), target_s)):
        source = AudioSource(str(flac), start, end)
        yield Utterance(f"{base}_{n}", CORPUS, subset, speaker, None, source)


def flac_seconds(path: Path) -> float | None:
    """The file's duration from its header, or None when unreadable (decode rejects it)."""
    try:
        return sf.info(str(path)).duration
    except (sf.LibsndfileError, RuntimeError, OSError):
        return None

"""LibriLight as downloaded: ``<subset>/<spk>/<book>/<name>.flac`` + same-stem ``.json``.

Files are chapter-long; the JSON's ``voice_activity`` ``[[start, end], …]`` (seconds)
cuts them. As libri-light's ``cut_by_vad``, consecutive voiced slices are packed until
the next would pass the target length; a slice longer than the target stands alone.
Our segment is the span from the first slice's start to the last one's end (pauses
between slices kept), ids ``<stem>_<n>``.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import Records, reject, require_dir
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


def subsets(root: str) -> list[str]:
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir())


def read(root: str, split: str | None = None, target_s: float = TARGET_S) -> Records:
    """Segments of one subset folder (``small``, ``medium``, ``large``), or of every subset."""
    for name in [split] if split else subsets(root):
        subset = require_dir(Path(root) / name, "LibriLight subset folder")
        stems = {p.with_suffix("") for p in subset.glob("*/*/*.flac")}
        stems |= {p.with_suffix("") for p in subset.glob("*/*/*.json")}
        for stem in sorted(stems):
            yield from _read_file(stem, name, target_s)


def _read_file(stem: Path, subset: str, target_s: float) -> Records:
    flac, meta_path = stem.with_suffix(".flac"), stem.with_suffix(".json")
    file_source = AudioSource(str(flac))
    if not flac.exists():
        yield reject(
            CORPUS, stem.name, reasons.MISSING_AUDIO, f"{meta_path.name} has no .flac", file_source
        )
        return
    try:
        meta = json.loads(meta_path.read_text())
        slices = [(float(s), float(e)) for s, e in meta["voice_activity"]]
        speaker = str(meta.get("speaker") or stem.parent.parent.name)
    except FileNotFoundError:
        yield reject(CORPUS, stem.name, reasons.BAD_METADATA, f"no {meta_path.name}", file_source)
        return
    except (ValueError, KeyError, TypeError) as e:
        yield reject(
            CORPUS,
            stem.name,
            reasons.BAD_METADATA,
            f"{meta_path.name}: bad voice_activity: {e}",
            file_source,
        )
        return
    length = meta.get("file_length_sec")
    good: list[tuple[float, float]] = []
    for i, (start, end) in enumerate(slices):
        if end <= start or start < 0 or (isinstance(length, int | float) and end > length + 0.1):
            yield reject(
                CORPUS,
                f"{stem.name}_vad{i}",
                reasons.BAD_SEGMENT,
                f"voice_activity[{i}] = [{start}, {end}] (file {length}s)",
                AudioSource(str(flac), start, end),
            )
        else:
            good.append((start, end))
    for n, (start, end) in enumerate(pack(sorted(good), target_s)):
        source = AudioSource(str(flac), start, end)
        yield Utterance(f"{stem.name}_{n}", CORPUS, subset, speaker, None, source)

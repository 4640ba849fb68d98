"""Training data for vocoders: ``units`` rows of ``tokenize`` outputs and their audio.

A row's ``source`` says where its audio is; the audio is decoded to 16 kHz and cut or
zero-padded to ``num_frames × 320`` samples so frame ``i`` covers samples
``[320 i, 320 (i + 1))``. Decoding is librosa's (libsndfile, else ffmpeg through
audioread), so the vocoder room needs nothing from the builder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pyarrow.parquet as pq

from vocoder import HOP, SAMPLE_RATE

MARKER = (
    "_SUCCESS.json"  # the builder's (schemas.outputs); the vocoder room imports nothing of ours
)
COLUMNS = ["id", "speaker", "text", "units", "durations", "num_frames", "source", "extractor"]


@dataclass(frozen=True, slots=True)
class Clip:
    id: str
    speaker: str
    text: str | None
    units: np.ndarray  # reduced units
    durations: np.ndarray  # frames per unit
    source: dict

    @property
    def frames(self) -> np.ndarray:
        return np.repeat(self.units, self.durations)

    def audio(self) -> np.ndarray:
        """The clip's 16 kHz waveform, exactly ``len(frames) × HOP`` samples long."""
        src = self.source
        start, end = src["start_s"] or 0.0, src["end_s"]
        duration = None if end is None else end - start
        wave, _ = librosa.load(src["path"], sr=SAMPLE_RATE, offset=start, duration=duration)
        n = int(self.durations.sum()) * HOP
        return np.pad(wave[:n], (0, max(0, n - len(wave))))


def held_out(id_: str, share: float = 0.1) -> bool:
    """A stable ``share`` of ids (by hash) kept out of training for evaluation (as train-t2u)."""
    return int(hashlib.sha256(id_.encode()).hexdigest()[:8], 16) / 16**8 < share


def read_clips(unit_dirs: list[str | Path]) -> tuple[list[Clip], int]:
    """Every kept utterance under ``OUT/units/*.parquet`` of each folder, by id, and K."""
    clips, ks = [], set()
    for out in unit_dirs:
        if not Path(out, MARKER).is_file():  # the builder's completion marker (written last)
            raise FileNotFoundError(f"{out} has no {MARKER}: not a finished tokenize output")
        files = sorted(Path(out, "units").glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no units/*.parquet under {out} (a `tokenize` output?)")
        for f in files:
            for row in pq.read_table(f, columns=COLUMNS).to_pylist():
                ks.add(row["extractor"]["k"])
                clips.append(Clip(row["id"], row["speaker"], row["text"], np.asarray(row["units"]),
                                  np.asarray(row["durations"]), row["source"]))  # fmt: skip
    if len(ks) != 1:
        raise ValueError(f"unit shards disagree on K: {sorted(ks)}; use one extractor")
    return sorted(clips, key=lambda c: c.id), ks.pop()

"""Training data for vocoders: ``units`` rows of ``tokenize`` outputs and their audio.

A row's ``source`` says where its audio is; the audio is decoded to 16 kHz and cut or
zero-padded to ``num_frames × 320`` samples so frame ``i`` covers samples
``[320 i, 320 (i + 1))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pipelines import audio
from speechinstruct.units import expand
from vocoder import HOP

COLUMNS = ["id", "speaker", "units", "durations", "num_frames", "source", "extractor"]


@dataclass(frozen=True, slots=True)
class Clip:
    id: str
    speaker: str
    units: np.ndarray  # reduced units
    durations: np.ndarray  # frames per unit
    source: dict

    @property
    def frames(self) -> np.ndarray:
        return expand(self.units, self.durations)

    def audio(self) -> np.ndarray:
        """The clip's 16 kHz waveform, exactly ``len(frames) × HOP`` samples long."""
        src = self.source
        wave = audio.load(src["path"], src["start_s"], src["end_s"])
        n = int(self.durations.sum()) * HOP
        return np.pad(wave[:n], (0, max(0, n - len(wave))))


def read_clips(unit_dirs: list[str | Path]) -> tuple[list[Clip], int]:
    """Every kept utterance under ``OUT/units/*.parquet`` of each folder, by id, and K."""
    clips, ks = [], set()
    for out in unit_dirs:
        files = sorted(Path(out, "units").glob("*.parquet"))
        if not files:
            raise FileNotFoundError(f"no units/*.parquet under {out} (a `tokenize` output?)")
        for f in files:
            for row in pq.read_table(f, columns=COLUMNS).to_pylist():
                ks.add(row["extractor"]["k"])
                clips.append(Clip(row["id"], row["speaker"], np.asarray(row["units"]),
                                  np.asarray(row["durations"]), row["source"]))  # fmt: skip
    if len(ks) != 1:
        raise ValueError(f"unit shards disagree on K: {sorted(ks)}; use one extractor")
    return sorted(clips, key=lambda c: c.id), ks.pop()

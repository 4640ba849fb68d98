"""Training data for vocoders: ``units`` rows of ``tokenize`` outputs and their audio.

A row's ``source`` says where its audio is; the audio is decoded to 16 kHz and cut or
zero-padded to ``num_frames × 320`` samples so frame ``i`` covers samples
``[320 i, 320 (i + 1))``. Decoding is librosa's (libsndfile), so the vocoder room needs
nothing from the builder. Folders and audio may be paths or URIs (``gs://``, ``s3://``): they
are opened through Beam's ``FileSystems``, which reads local paths the same way.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import librosa
import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from vocoder import HOP, SAMPLE_RATE

# The builder's completion marker (schemas.outputs); the vocoder room imports nothing of ours.
MARKER = "_SUCCESS.json"
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
        with _open(src["path"]) as f:
            wave, _ = librosa.load(f, sr=SAMPLE_RATE, offset=start, duration=duration)
        n = int(self.durations.sum()) * HOP
        return np.pad(wave[:n], (0, max(0, n - len(wave))))


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def held_out(id_: str, share: float = 0.1) -> bool:
    """A stable ``share`` of ids (by hash) kept out of training for evaluation (as train-t2u)."""
    return int(hashlib.sha256(id_.encode()).hexdigest()[:8], 16) / 16**8 < share


def read_clips(unit_dirs: list[str | Path]) -> tuple[list[Clip], int]:
    """Every kept utterance under ``OUT/units/*.parquet`` of each folder, by id, and K."""
    clips, ks = [], set()
    for out in unit_dirs:
        out = str(out)
        if not FileSystems.exists(FileSystems.join(out, MARKER)):
            raise FileNotFoundError(f"{out} has no {MARKER}: not a finished tokenize output")
        pattern = FileSystems.join(out, "units", "*.parquet")
        files = sorted(m.path for m in FileSystems.match([pattern])[0].metadata_list)
        if not files:
            raise FileNotFoundError(f"no units/*.parquet under {out} (a `tokenize` output?)")
        for f in files:
            with _open(f) as opened:
                rows = pq.read_table(opened, columns=COLUMNS).to_pylist()
            for row in rows:
                ks.add(row["extractor"]["k"])
                clips.append(
                    Clip(
                        row["id"],
                        row["speaker"],
                        row["text"],
                        np.asarray(row["units"]),
                        np.asarray(row["durations"]),
                        row["source"],
                    )
                )
    if len(ks) != 1:
        raise ValueError(f"unit shards disagree on K: {sorted(ks)}; use one extractor")
    return sorted(clips, key=lambda c: c.id), ks.pop()

"""Units back to speech: one interface, two vocoders (DESIGN.md §8).

``load_vocoder(path)`` reads a vocoder folder (``config.json`` plus weights):

- ``"vocoder": "baseline"`` in the config: per-unit mean log-mel + Griffin-Lim
  (``vocoder.baseline``), fitted from unit shards in seconds;
- anything else is a unit HiFi-GAN in fairseq's ``CodeHiFiGANVocoder`` layout
  (``vocoder.hifigan``): the released mHuBERT-L11-km1000 vocoder folder loads as is.

Every vocoder is called as ``synthesize(units, durations=None, speaker=None)`` and
returns mono float32 samples at ``sample_rate`` (320 samples per 50 Hz unit frame at
16 kHz). ``durations`` (frames per unit) expand reduced units; without them a vocoder
that can predict durations does so, and one that cannot treats ``units`` as frames.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16000  # = schemas.SAMPLE_RATE: this room imports nothing of ours (DESIGN.md §3)
HOP = 320  # samples per 50 Hz unit frame


class Vocoder(Protocol):
    sample_rate: int

    def synthesize(
        self,
        units: Sequence[int],
        durations: Sequence[int] | None = None,
        speaker: int | None = None,
    ) -> np.ndarray: ...


def read_config(path: str | Path) -> tuple[Path, dict]:
    """``(folder, config)`` of a vocoder folder, or of a checkpoint file beside its config.json."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    config = folder / "config.json"
    if not config.exists():
        raise FileNotFoundError(f"no config.json in {folder} (a vocoder folder?)")
    return folder, json.loads(config.read_text())


def load_vocoder(path: str | Path, device: str = "cpu") -> Vocoder:
    """The vocoder in folder ``path`` (or the checkpoint file ``path``), ready to synthesize."""
    _, config = read_config(path)
    if config.get("vocoder") == "baseline":
        from vocoder.baseline import BaselineVocoder

        return BaselineVocoder.load(path)
    from vocoder.hifigan import HifiGanVocoder

    return HifiGanVocoder.load(path, device=device)

"""The fast baseline vocoder: unit log-mel templates in context, inverted by Griffin-Lim.

``fit`` cuts the log-mel spectrogram of every clip into the runs of its reduced units
and keeps, per unit in context, the mean log-mel at the run's start, middle and end:
for the trigram (previous unit, unit, next unit), the bigram (previous unit, unit) and
the unit alone, plus each unit's mean run length (its "duration predictor"). Synthesis
takes the most specific context seen, interpolates the three anchors over the run,
smooths a little and inverts mel → STFT magnitude → waveform with librosa's
Griffin-Lim. One pass over the audio, no training, seconds on a CPU; context matters:
on the demo corpus pocketsphinx WER fell from 0.99 (unit means alone) to 0.70.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import librosa
import numpy as np
from scipy.ndimage import uniform_filter1d

from vocoder import HOP, SAMPLE_RATE, read_config
from vocoder.data import Clip

MEL = {"sr": SAMPLE_RATE, "n_fft": 1024, "hop_length": HOP, "n_mels": 80, "fmax": 8000}
FLOOR = 1e-5


def log_mel(wave: np.ndarray) -> np.ndarray:
    """``(frames, n_mels)`` log-mel of ``wave``, one frame per 50 Hz unit frame."""
    mel = librosa.feature.melspectrogram(y=wave, power=1.0, **MEL)
    return np.log(np.maximum(mel, FLOOR)).T[: len(wave) // HOP]


ANY = -2  # wildcard in a context key; -1 marks the start or end of an utterance
ANCHORS = 3  # start, middle, end of a unit's run


def _anchors(run: np.ndarray) -> np.ndarray:
    return run[np.rint(np.linspace(0, len(run) - 1, ANCHORS)).astype(int)]


def _contexts(units: np.ndarray) -> list[tuple[tuple[int, int, int], ...]]:
    """Per reduced unit, its context keys from most to least specific."""
    prev = np.r_[-1, units[:-1]]
    next_ = np.r_[units[1:], -1]
    triples = zip(prev.tolist(), units.tolist(), next_.tolist(), strict=True)
    return [((p, u, n), (p, u, ANY), (ANY, u, ANY)) for p, u, n in triples]


def fit(
    clips: list[Clip], k: int, output: Path, seed: int = 0, max_contexts: int = 100_000
) -> dict:
    """Context templates and mean durations of ``clips``, saved to ``output``.

    Unigram contexts are always kept; of the rest, the ``max_contexts`` most frequent.
    """
    del seed  # deterministic: one pass, no sampling
    sums: dict[tuple[int, int, int], np.ndarray] = {}
    counts: dict[tuple[int, int, int], int] = {}
    run_sum, run_count = np.zeros(k), np.zeros(k)
    for i, clip in enumerate(clips, 1):
        mel = log_mel(clip.audio())
        ends = np.cumsum(clip.durations)
        for keys, end, length in zip(_contexts(clip.units), ends, clip.durations, strict=True):
            anchors = _anchors(mel[end - length : end])
            for key in keys:
                if key in sums:
                    sums[key] += anchors
                    counts[key] += 1
                else:
                    sums[key], counts[key] = anchors.astype(np.float64), 1
        np.add.at(run_sum, clip.units, clip.durations)
        np.add.at(run_count, clip.units, 1)
        if i % 200 == 0 or i == len(clips):
            print(f"[baseline] {i}/{len(clips)} clips, {len(sums)} contexts", flush=True)
    if not sums:
        raise ValueError("no frames to fit the baseline vocoder on")
    unigrams = sorted(key for key in sums if key[0] == ANY)
    wider = sorted((key for key in sums if key[0] != ANY), key=lambda key: (-counts[key], key))
    keys = unigrams + sorted(wider[:max_contexts])
    anchors = np.stack([sums[key] / counts[key] for key in keys]).astype(np.float32)
    durations = np.where(run_count > 0, run_sum / np.maximum(run_count, 1), 1.0)

    output.mkdir(parents=True, exist_ok=True)
    np.save(output / "context_keys.npy", np.asarray(keys, dtype=np.int32))
    np.save(output / "context_mels.npy", anchors)
    np.save(output / "unit_durations.npy", durations.astype(np.float32))
    config = {
        "vocoder": "baseline",
        "num_embeddings": k,
        "sampling_rate": SAMPLE_RATE,
        **{k_: v for k_, v in MEL.items() if k_ != "sr"},
        "clips": len(clips),
        "units_heard": len(unigrams),
        "contexts": len(keys),
    }
    (output / "config.json").write_text(json.dumps(config, indent=1) + "\n")
    return config


class BaselineVocoder:
    """Units → context log-mel templates → Griffin-Lim waveform (one averaged voice)."""

    sample_rate = SAMPLE_RATE

    def __init__(
        self,
        keys: np.ndarray,
        mels: np.ndarray,
        durations: np.ndarray,
        smooth: int = 3,
        iterations: int = 32,
    ):
        self.index = {tuple(key): i for i, key in enumerate(keys.tolist())}
        self.mels, self.durations = mels, durations
        self.fallback = mels[keys[:, 0] == ANY].mean(0)  # units never heard: the average
        self.smooth, self.iterations = smooth, iterations

    @classmethod
    def load(cls, path: str | Path) -> BaselineVocoder:
        folder, _ = read_config(path)
        keys, mels = np.load(folder / "context_keys.npy"), np.load(folder / "context_mels.npy")
        return cls(keys, mels, np.load(folder / "unit_durations.npy"))

    def _template(self, keys: tuple) -> np.ndarray:
        return next(
            (self.mels[self.index[key]] for key in keys if key in self.index), self.fallback
        )

    def synthesize(
        self,
        units: Sequence[int],
        durations: Sequence[int] | None = None,
        speaker: int | None = None,
    ) -> np.ndarray:
        units = np.asarray(units, dtype=np.int64)
        k = len(self.durations)
        if units.size and (units.min() < 0 or units.max() >= k):
            raise ValueError(f"unit ids must lie in [0, {k}); got {units.min()}..{units.max()}")
        if speaker is not None:
            raise ValueError("the baseline vocoder has one (averaged) voice; drop --speaker")
        if durations is None:
            durations = np.maximum(1, np.rint(self.durations[units])).astype(np.int64)
        durations = np.asarray(durations, dtype=np.int64)
        if units.size == 0 or durations.sum() == 0:
            return np.zeros(0, dtype=np.float32)
        runs = []
        for keys, length in zip(_contexts(units), durations, strict=True):
            anchors = self._template(keys)
            t = np.linspace(0, ANCHORS - 1, length) if length > 1 else np.ones(length)
            grid = np.arange(ANCHORS)
            runs.append(np.stack([np.interp(t, grid, a) for a in anchors.T], axis=1))
        mel = np.concatenate(runs)
        # one frame more than units: a centred STFT of n × HOP samples has n + 1 frames
        mel = np.vstack([mel, mel[-1:]])
        if self.smooth > 1:
            mel = uniform_filter1d(mel, self.smooth, axis=0, mode="nearest")
        stft = librosa.feature.inverse.mel_to_stft(
            np.exp(mel.T), sr=SAMPLE_RATE, n_fft=MEL["n_fft"], power=1.0, fmax=MEL["fmax"]
        )
        wave = librosa.griffinlim(
            stft,
            n_iter=self.iterations,
            hop_length=HOP,
            n_fft=MEL["n_fft"],
            length=(len(mel) - 1) * HOP,
            random_state=0,
        )
        peak = np.abs(wave).max()
        return (wave * (0.9 / peak if peak > 0.9 else 1.0)).astype(np.float32)

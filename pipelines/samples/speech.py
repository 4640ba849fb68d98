"""Speaking sample text and writing it the way each corpus stores audio."""

from __future__ import annotations

import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from schemas import SAMPLE_RATE
from speechinstruct.tts import Voice, speak

NOISE_DBFS = -70.0  # a recording's noise floor, so pauses are not digital silence


def speak_all(jobs: list[tuple[str, Voice]], sr: int = SAMPLE_RATE) -> list[np.ndarray]:
    """Speak each ``(text, voice)`` at ``sr``; TTS runs in subprocesses, two at a time."""

    def one(job: tuple[str, Voice]) -> np.ndarray:
        wave, native = speak(*job)
        return soxr.resample(wave, native, sr) if native != sr else wave

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, jobs))


def voiced_span(wave: np.ndarray, top_db: float = 35.0, hop: int = 160) -> tuple[int, int]:
    """Sample range of the voiced part of one spoken sentence (frames within ``top_db`` of
    the loudest, as ``librosa.effects.trim``)."""
    frames = len(wave) // hop
    energy = np.square(wave[: frames * hop].reshape(frames, hop)).mean(axis=1)
    level = 10 * np.log10(np.maximum(energy, 1e-12))
    loud = np.flatnonzero(level > level.max() - top_db)
    return int(loud[0] * hop), int(min(len(wave), (loud[-1] + 1) * hop))


def add_noise(wave: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = rng.standard_normal(len(wave)) * 10 ** (NOISE_DBFS / 20)
    return (wave + noise).astype(np.float32)


def write_flac(path: Path, wave: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr, format="FLAC", subtype="PCM_16")


def write_mp3(path: Path, wave: np.ndarray, sr: int = SAMPLE_RATE, out_sr: int = 48_000) -> None:
    """MP3 at 48 kHz, as Common Voice ships its clips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, soxr.resample(wave, sr, out_sr), out_sr, format="MP3", subtype="MPEG_LAYER_III")


def write_opus(path: Path, wave: np.ndarray, sr: int = SAMPLE_RATE) -> None:
    """Ogg/Opus via ffmpeg with bit-exact flags (libsndfile's Ogg serials are random)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise RuntimeError("ffmpeg is not installed; sudo apt-get install -y ffmpeg")
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (np.clip(wave, -1, 1) * 32767).astype("<i2").tobytes()
    cmd = [
        ffmpeg,
        "-nostdin",
        "-v",
        "error",
        "-y",
        "-f",
        "s16le",
        "-ar",
        str(sr),
        "-ac",
        "1",
        "-i",
        "-",
        "-c:a",
        "libopus",
        "-b:a",
        "24k",
        "-fflags",
        "+bitexact",
        "-flags:a",
        "+bitexact",
        "-map_metadata",
        "-1",
        str(path),
    ]
    proc = subprocess.run(cmd, input=pcm, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ffmpeg failed on {path}: {proc.stderr.decode(errors='replace')}")

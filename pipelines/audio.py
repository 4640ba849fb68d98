"""Decode any of wav/flac/mp3/opus/ogg (a whole file or a segment) to 16 kHz mono float32.

libsndfile (through ``soundfile``) decodes all four corpora's formats in-process; an
``ffmpeg`` subprocess is the fallback for containers it does not know. Failures raise an
``AudioError`` whose ``reason`` is a stable reject code.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import soxr

from pipelines.records import Reject, Utterance
from schemas import SAMPLE_RATE, reasons
from speechinstruct import storage

# Segment ends may overshoot the decoded length by encoder padding; beyond this, reject.
END_TOLERANCE_S = 0.1


class AudioError(Exception):
    reason = reasons.DECODE_ERROR


class MissingAudio(AudioError):
    reason = reasons.MISSING_AUDIO


class DecodeError(AudioError):
    reason = reasons.DECODE_ERROR


class BadSegment(AudioError):
    reason = reasons.BAD_SEGMENT


@dataclass(frozen=True, slots=True)
class AudioLimits:
    """What a usable utterance looks like once decoded."""

    min_s: float = 0.5
    max_s: float = 60.0
    silence_dbfs: float = -55.0  # RMS level below which an utterance counts as silent


def load(
    path: str, start_s: float | None = None, end_s: float | None = None, sr: int = SAMPLE_RATE
) -> np.ndarray:
    """Decode ``path`` (a local path or URI; or its ``[start_s, end_s)`` segment) to mono
    float32 at ``sr``."""
    if start_s is not None and end_s is not None and end_s <= start_s:
        raise BadSegment(f"segment end {end_s} <= start {start_s}")
    remote = storage.is_remote(path)
    if not (storage.exists(path) if remote else os.path.isfile(path)):
        raise MissingAudio(f"no such file: {path}")
    try:
        if remote:
            with storage.open_read(path) as f:
                wave, native_sr = _read_soundfile(f, path, start_s, end_s)
        else:
            wave, native_sr = _read_soundfile(path, path, start_s, end_s)
    except sf.LibsndfileError:
        wave, native_sr = _read_ffmpeg(path, start_s, end_s)
    if wave.ndim == 2:
        wave = wave.mean(axis=1)
    if not np.all(np.isfinite(wave)):
        raise DecodeError(f"non-finite samples in {path}")
    if native_sr != sr:
        wave = soxr.resample(wave, native_sr, sr, quality="HQ")
    return np.ascontiguousarray(wave, dtype=np.float32)


def _segment_frames(
    total: int, rate: int, start_s: float | None, end_s: float | None
) -> tuple[int, int]:
    start = 0 if start_s is None else round(start_s * rate)
    stop = total if end_s is None else round(end_s * rate)
    if start < 0 or start >= total:
        raise BadSegment(f"segment start {start_s}s outside the audio ({total / rate:.2f}s)")
    if stop > total + END_TOLERANCE_S * rate:
        raise BadSegment(f"segment end {end_s}s beyond the audio ({total / rate:.2f}s)")
    return start, min(stop, total)


def _read_soundfile(
    file, path: str, start_s: float | None, end_s: float | None
) -> tuple[np.ndarray, int]:
    with sf.SoundFile(file) as f:
        rate, total = f.samplerate, f.frames
        if total <= 0:
            raise DecodeError(f"no audio frames in {path}")
        start, stop = _segment_frames(total, rate, start_s, end_s)
        try:
            f.seek(start)
            wave = f.read(stop - start, dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError) as e:
            raise DecodeError(f"{path}: {e}") from e
    if len(wave) < 0.9 * (stop - start):
        raise DecodeError(f"{path}: truncated ({len(wave)} of {stop - start} frames decoded)")
    return wave, rate


def _read_ffmpeg(path: str, start_s: float | None, end_s: float | None) -> tuple[np.ndarray, int]:
    """Fallback for containers libsndfile does not read; decodes straight to SAMPLE_RATE."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise DecodeError(f"{path}: libsndfile cannot read it and ffmpeg is not installed")
    if storage.is_remote(path):
        with tempfile.NamedTemporaryFile(suffix=os.path.splitext(path)[1]) as local:
            local.write(storage.read_bytes(path))
            local.flush()
            return _read_ffmpeg(local.name, start_s, end_s)
    cmd = [ffmpeg, "-nostdin", "-v", "error", "-i", path]
    if start_s is not None:
        cmd[4:4] = ["-ss", f"{start_s:.3f}"]
    if end_s is not None:
        cmd += ["-t", f"{end_s - (start_s or 0.0):.3f}"]
    cmd += ["-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-"]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise DecodeError(f"{path}: {err[-1] if err else 'no audio decoded'}")
    return np.frombuffer(proc.stdout, dtype=np.float32), SAMPLE_RATE


def check(wave: np.ndarray, limits: AudioLimits, sr: int = SAMPLE_RATE) -> tuple[str, str] | None:
    """``(reason, detail)`` if a decoded utterance is unusable, else None."""
    seconds = len(wave) / sr
    if seconds < limits.min_s:
        return reasons.TOO_SHORT, f"{seconds:.3f}s < {limits.min_s}s"
    if seconds > limits.max_s:
        return reasons.TOO_LONG, f"{seconds:.3f}s > {limits.max_s}s"
    rms = float(np.sqrt(np.mean(np.square(wave, dtype=np.float64))))
    level = 20 * np.log10(rms) if rms > 0 else -np.inf
    if level < limits.silence_dbfs:
        return reasons.SILENT, f"RMS {level:.1f} dBFS < {limits.silence_dbfs} dBFS"
    return None


def decode(utt: Utterance, limits: AudioLimits = AudioLimits()) -> np.ndarray | Reject:
    """An utterance's checked 16 kHz waveform, or the reject that says why there is none."""
    src = utt.source
    try:
        wave = load(src.path, src.start_s, src.end_s)
    except AudioError as e:
        return Reject(utt.id, utt.corpus, src, "decode", e.reason, str(e))
    except Exception as e:  # an unforeseen decoder failure must not stop a pipeline
        return Reject(utt.id, utt.corpus, src, "decode", reasons.DECODE_ERROR, repr(e))
    problem = check(wave, limits)
    if problem:
        return Reject(utt.id, utt.corpus, src, "decode", *problem)
    return wave

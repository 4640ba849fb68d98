"""Real TTS voices from Debian's ``flite`` and ``espeak-ng``, used to make sample speech.

Each voice is a speaker of the sample corpora and of the ``tts`` speech backend.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass

import numpy as np
import soundfile as sf

APT_HINT = "install it with: sudo apt-get install -y flite espeak-ng"


@dataclass(frozen=True, slots=True)
class Voice:
    name: str
    engine: str  # "flite" or "espeak-ng"
    option: str  # flite voice name or espeak-ng voice+variant
    gender: str
    accent: str


VOICES: tuple[Voice, ...] = (
    Voice("slt", "flite", "slt", "female", "United States English"),
    Voice("rms", "flite", "rms", "male", "United States English"),
    Voice("awb", "flite", "awb", "male", "Scottish English"),
    Voice("kal16", "flite", "kal16", "male", "United States English"),
    Voice("en-us-m3", "espeak-ng", "en-us+m3", "male", "United States English"),
    Voice("en-us-f2", "espeak-ng", "en-us+f2", "female", "United States English"),
    Voice("en-m1", "espeak-ng", "en+m1", "male", "England English"),
    Voice("en-f4", "espeak-ng", "en+f4", "female", "England English"),
)
FLITE_VOICES = tuple(v for v in VOICES if v.engine == "flite")


def voice(name: str) -> Voice:
    for v in VOICES:
        if v.name == name:
            return v
    raise ValueError(f"unknown voice {name!r}; choose from {', '.join(v.name for v in VOICES)}")


def speak(text: str, v: Voice) -> tuple[np.ndarray, int]:
    """Speak ``text`` with voice ``v``: mono float32 samples and their sample rate."""
    exe = shutil.which(v.engine)
    if exe is None:
        raise RuntimeError(f"{v.engine} is not installed; {APT_HINT}")
    if v.engine == "flite":
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            _run([exe, "-voice", v.option, "-t", text, "-o", tmp.name])
            wave, sr = sf.read(tmp.name, dtype="float32")
    else:
        out = _run([exe, "-v", v.option, "--stdout", text])
        wave, sr = sf.read(io.BytesIO(out), dtype="float32")
    return wave, sr


def _run(cmd: list[str]) -> bytes:
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout

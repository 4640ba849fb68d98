"""Unit sequences: run-length reduction, its inverse, and the ``<sosp><12><7>…<eosp>`` form."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SOSP, EOSP = "<sosp>", "<eosp>"
_UNIT = re.compile(r"<(\d+)>")
_SPAN = re.compile(r"<sosp>((?:<\d+>)*)<eosp>")


def reduce(frames: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Collapse runs of equal frame units: ``(units, durations)`` with run lengths."""
    frames = np.asarray(frames)
    if frames.size == 0:
        return frames.astype(np.int64), np.zeros(0, dtype=np.int64)
    starts = np.flatnonzero(np.r_[True, frames[1:] != frames[:-1]])
    durations = np.diff(np.r_[starts, frames.size])
    return frames[starts].astype(np.int64), durations.astype(np.int64)


def expand(units: Sequence[int] | np.ndarray, durations: Sequence[int] | np.ndarray) -> np.ndarray:
    """The inverse of ``reduce``: repeat each unit by its duration."""
    return np.repeat(np.asarray(units, dtype=np.int64), np.asarray(durations, dtype=np.int64))


def format_units(units: Sequence[int] | np.ndarray) -> str:
    """``[12, 7]`` → ``<sosp><12><7><eosp>`` (the released SpeechInstruct form)."""
    return SOSP + "".join(f"<{int(u)}>" for u in units) + EOSP


def parse_units(text: str) -> list[int]:
    """The units of the first ``<sosp>…<eosp>`` span in ``text``; ValueError if none."""
    match = _SPAN.search(text.replace(" ", ""))
    if match is None:
        raise ValueError(f"no <sosp>…<eosp> unit span in {text[:60]!r}")
    return [int(u) for u in _UNIT.findall(match.group(1))]

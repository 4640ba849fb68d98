"""Decode utterances to checked 16 kHz audio; what cannot be used goes to ``rejects``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import apache_beam as beam
import numpy as np

from pipelines.audio import AudioLimits, decode
from pipelines.records import Reject, Utterance
from schemas import SAMPLE_RATE

REJECTS = "rejects"


@dataclass(frozen=True, slots=True)
class Decoded:
    utt: Utterance
    wave: np.ndarray
    audio_hash: str


def audio_hash(wave: np.ndarray) -> str:
    """Content hash of decoded audio, on 16-bit samples so that float noise does not count."""
    pcm = np.round(np.clip(wave, -1, 1) * 32767).astype("<i2")
    return hashlib.sha256(pcm.tobytes()).hexdigest()


class DecodeFn(beam.DoFn):
    """An utterance → its samples at ``SAMPLE_RATE`` (``Decoded``), or a reject with a reason."""

    def __init__(self, limits: AudioLimits):
        self.limits = limits
        self.decoded = beam.metrics.Metrics.counter("decode", "decoded")
        self.seconds = beam.metrics.Metrics.counter("decode", "audio_ms")

    def process(self, utt: Utterance):
        out = decode(utt, self.limits)
        if isinstance(out, Reject):
            beam.metrics.Metrics.counter("decode", f"rejected_{out.reason}").inc()
            yield beam.pvalue.TaggedOutput(REJECTS, out)
            return
        self.decoded.inc()
        self.seconds.inc(len(out) * 1000 // SAMPLE_RATE)
        yield Decoded(utt, out, audio_hash(out))

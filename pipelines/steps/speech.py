"""Speech for texts: the T2U model in ``RunInference``, or a TTS voice + the unit extractor.

Both take ``(key, text)`` and give ``(key, units)`` (reduced units; ``[]`` if none).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

import apache_beam as beam
import soxr
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from pipelines.records import AudioSource, Utterance
from pipelines.steps.decode import Decoded, audio_hash
from pipelines.steps.extract import SharedModel, UnitModelHandler
from schemas import SAMPLE_RATE
from speechinstruct import storage
from speechinstruct.extractors import ExtractorSpec
from speechinstruct.t2u.model import T2U
from speechinstruct.tts import FLITE_VOICES, speak
from speechinstruct.units import reduce


class T2UModelHandler(SharedModel, ModelHandler[tuple[str, str], PredictionResult, T2U]):
    """Batched T2U generation; the model loads once per worker."""

    def __init__(self, path: str, device: str = "cpu", batch_size: int = 32, model_copies: int = 1):
        super().__init__()
        self.path, self.device, self.batch_size = path, device, batch_size
        self.copies = model_copies

    def load_model(self) -> T2U:
        return T2U.load(storage.local_copy(self.path), self.device)

    def run_inference(
        self, batch: Sequence[tuple[str, str]], model: T2U, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        units = model.generate([text for _, text in batch], batch_size=len(batch))
        return [PredictionResult(item, u) for item, u in zip(batch, units, strict=True)]

    def batch_elements_kwargs(self) -> dict:
        # Full batches: generation pays per decoding step, not per sequence, so Beam's
        # adaptive start at 1 element costs a whole generation per text.
        return {"min_batch_size": self.batch_size, "max_batch_size": self.batch_size}


def voice_for(key: str):
    """A flite voice chosen by the key, so the same text always gets the same speaker."""
    return FLITE_VOICES[int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % len(FLITE_VOICES)]


class SpeakFn(beam.DoFn):
    """``(key, text)`` → the text spoken by the flite voice the key picks, as ``Decoded``."""

    def __init__(self):
        super().__init__()
        self.spoken = beam.metrics.Metrics.counter("speech", "spoken")

    def process(self, item: tuple[str, str]):
        key, text = item
        voice = voice_for(key)
        wave, sr = speak(text, voice)
        wave = soxr.resample(wave, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else wave
        utt = Utterance(key, "tts", "", voice.name, text, AudioSource(f"tts:{voice.name}"))
        self.spoken.inc()
        yield Decoded(utt, wave, audio_hash(wave))


class TextToUnits(beam.PTransform):
    """``(key, text)`` → ``(key, units)`` with the chosen speech backend."""

    def __init__(self, backend: str, t2u: str | None, spec: ExtractorSpec, kmeans: str | None):
        super().__init__()
        if backend == "t2u" and not t2u:
            raise ValueError("--speech-backend t2u needs --t2u DIR (a train-t2u output)")
        if backend == "tts" and not kmeans:
            raise ValueError("--speech-backend tts needs --kmeans (and the extractor options)")
        self.backend, self.t2u, self.spec, self.kmeans = backend, t2u, spec, kmeans

    def expand(self, texts):
        if self.backend == "t2u":
            return (
                texts
                | "T2U" >> RunInference(T2UModelHandler(self.t2u, self.spec.device))
                | "T2UUnits" >> beam.Map(lambda r: (r.example[0], list(r.inference)))
            )
        return (
            texts
            | "Speak" >> beam.ParDo(SpeakFn())
            | "ExtractUnits" >> RunInference(UnitModelHandler(self.spec, self.kmeans))
            | "Reduce" >> beam.Map(lambda r: (r.example.utt.id, reduce(r.inference)[0].tolist()))
        )

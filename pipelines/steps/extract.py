"""``RunInference`` with our own ``ModelHandler``: batches of waveforms → frame units.

The default PyTorch handler stacks equal-shape tensors; speech has every length, so this
handler sorts each batch by length and runs sub-batches whose padded size stays bounded.
On a GPU worker the model is shared across the worker's processes (``model_copies`` of it,
one per GPU), as Beam does for large models; model files on object storage are copied once
per worker machine to local disk and loaded from there.
(HuBERT-base, which takes no attention mask, then runs each wave in its own forward pass so
padding cannot change its units: see ``HubertFeatures.features``.) The extractor (model +
centroids) is loaded once per worker by ``RunInference``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from apache_beam.ml.inference.base import ModelHandler, PredictionResult

from pipelines.steps.decode import Decoded
from schemas import SAMPLE_RATE
from speechinstruct import storage
from speechinstruct.extractors import ExtractorSpec, UnitExtractor


def length_buckets(lengths: Sequence[int], max_samples: int) -> list[list[int]]:
    """Indices grouped by similar length, each group's padded size ≤ ``max_samples``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[i] * (len(groups[-1]) + 1) <= max_samples:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


class SharedModel:
    """Beam's large-model hooks for a handler with ``device`` and ``copies``: on a GPU (or
    when asked for several copies) one model is shared by the worker's processes."""

    device: str
    copies: int

    def share_model_across_processes(self) -> bool:
        return self.device.startswith("cuda") or self.copies > 1

    def model_copies(self) -> int:
        return self.copies


class UnitModelHandler(SharedModel, ModelHandler[Decoded, PredictionResult, UnitExtractor]):
    """Decoded waves → frame units with the extractor (features + nearest centroid)."""

    def __init__(
        self,
        spec: ExtractorSpec,
        kmeans: str,
        batch_size: int = 16,
        max_batch_seconds: float = 160.0,
        model_copies: int = 1,
    ):
        super().__init__()
        self.spec, self.kmeans = spec, kmeans
        self.batch_size = batch_size
        self.max_samples = int(max_batch_seconds * SAMPLE_RATE)
        self.device, self.copies = spec.device, model_copies

    def load_model(self) -> UnitExtractor:
        checkpoint = self.spec.checkpoint and storage.local_copy(self.spec.checkpoint)
        spec = dataclasses.replace(self.spec, checkpoint=checkpoint)
        return UnitExtractor(spec, storage.local_copy(self.kmeans))

    def run_inference(
        self, batch: Sequence[Decoded], model: UnitExtractor, inference_args: dict | None = None
    ) -> Iterable[PredictionResult]:
        units: list = [None] * len(batch)
        for group in length_buckets([len(d.wave) for d in batch], self.max_samples):
            for i, frames in zip(group, model([batch[i].wave for i in group]), strict=True):
                units[i] = frames
        return [
            PredictionResult(d, u, model_id=model.centroids_hash)
            for d, u in zip(batch, units, strict=True)
        ]

    def batch_elements_kwargs(self) -> dict:
        # Beam sizes batches adaptively up to batch_size. Fixed batches of 16 were measured
        # slower here (more padding, see benchmarks/RESULTS.md).
        return {"min_batch_size": 1, "max_batch_size": self.batch_size}

    def get_num_bytes(self, batch: Sequence[Decoded]) -> int:
        return sum(d.wave.nbytes for d in batch)

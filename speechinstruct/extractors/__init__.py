"""Unit extractors: 16 kHz waveforms → 50 Hz frame features → k-means units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from speechinstruct.kmeans import Assigner, centroids_hash

EXTRACTORS = ("mfcc", "hubert")


@dataclass(frozen=True, slots=True)
class ExtractorSpec:
    """Everything needed to rebuild an extractor on a worker: picklable, no weights."""

    name: str = "mfcc"
    checkpoint: str | None = None
    layer: int = 11
    device: str = "cpu"
    bf16: bool = False


def build_features(spec: ExtractorSpec):
    """The feature extractor of ``spec``: ``features(waves) -> [(frames, dim)]``."""
    if spec.name == "mfcc":
        from speechinstruct.extractors.mfcc import MfccFeatures

        return MfccFeatures()
    if spec.name == "hubert":
        if not spec.checkpoint:
            raise ValueError("--extractor hubert needs --checkpoint (an HF folder or fairseq .pt)")
        from speechinstruct.extractors.hubert import HubertFeatures

        return HubertFeatures(spec.checkpoint, spec.layer, spec.device, spec.bf16)
    raise ValueError(f"unknown extractor {spec.name!r}; choose from {', '.join(EXTRACTORS)}")


def load_centroids(path: str) -> np.ndarray:
    """k-means centroids from ``.npy`` or a released joblib/sklearn ``.bin``."""
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False).astype(np.float32)
    from speechinstruct.checkpoints import load_kmeans_centroids

    return load_kmeans_centroids(path)


class UnitExtractor:
    """Waveforms → 50 Hz frame units: features, then the nearest k-means centroid."""

    def __init__(self, spec: ExtractorSpec, kmeans: str):
        self.spec = spec
        self.features = build_features(spec)
        centroids = load_centroids(kmeans)
        self.assign = Assigner(centroids, spec.device)
        self.k = len(centroids)
        self.centroids_hash = centroids_hash(centroids)

    def info(self) -> dict:
        layer = self.spec.layer if self.spec.name == "hubert" else None
        return {
            "name": self.spec.name,
            "layer": layer,
            "k": self.k,
            "centroids_hash": self.centroids_hash,
        }

    def __call__(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return [self.assign(f) for f in self.features.features(waves)]

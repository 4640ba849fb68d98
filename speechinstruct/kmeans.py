"""k-means over frame features: assignment on the model's device, and learning with sklearn.

Learning uses fairseq's ``learn_kmeans.py`` settings for ``MiniBatchKMeans`` as defaults.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True, slots=True)
class KMeansConfig:
    """fairseq's ``learn_kmeans.py`` defaults."""

    init: str = "k-means++"
    max_iter: int = 100
    batch_size: int = 10_000
    tol: float = 0.0
    max_no_improvement: int = 100
    n_init: int = 20
    reassignment_ratio: float = 0.0
    seed: int = 0


def centroids_hash(centroids: np.ndarray) -> str:
    """A short content hash of the centroids, recorded with every unit row."""
    data = np.ascontiguousarray(centroids, dtype=np.float32).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


class Assigner:
    """Nearest centroid by argmin ‖x‖² − 2x·C + ‖C‖², computed with torch on ``device``."""

    def __init__(self, centroids: np.ndarray, device: str = "cpu"):
        self.centroids = torch.as_tensor(np.asarray(centroids, np.float32), device=device)
        self.norms = (self.centroids**2).sum(1)
        self.k, self.dim = self.centroids.shape

    def __call__(self, features: np.ndarray | torch.Tensor) -> np.ndarray:
        x = torch.as_tensor(features, dtype=torch.float32, device=self.centroids.device)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features of shape {tuple(x.shape)}; centroids need (N, {self.dim})")
        dist = (x**2).sum(1, keepdim=True) - 2 * x @ self.centroids.T + self.norms
        return dist.argmin(1).cpu().numpy()


def learn(frames: np.ndarray, k: int, config: KMeansConfig = KMeansConfig()) -> tuple:
    """Fit MiniBatchKMeans on ``frames`` (N, D): ``(centroids, inertia)``."""
    from sklearn.cluster import MiniBatchKMeans

    if len(frames) < k:
        raise ValueError(f"{len(frames)} frames < k={k}: use more audio or a lower --k")
    params = asdict(config)
    params["random_state"] = params.pop("seed")
    model = MiniBatchKMeans(n_clusters=k, compute_labels=False, **params).fit(frames)
    inertia = float(-model.score(frames))
    return model.cluster_centers_.astype(np.float32), inertia


def save(path: str | Path, centroids: np.ndarray, info: dict) -> dict:
    """Write centroids as ``.npy`` and a JSON sidecar beside them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, centroids.astype(np.float32))
    info = {**info, "k": len(centroids), "centroids_hash": centroids_hash(centroids)}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1) + "\n")
    return info

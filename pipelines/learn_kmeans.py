"""``speechgpt learn-kmeans``: sample frame features from a corpus, fit k-means, save centroids.

Memory stays bounded: frames are reservoir-sampled down to ``--max-frames``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from pipelines import arguments, sources
from pipelines.audio import decode
from pipelines.records import Reject
from speechinstruct import kmeans
from speechinstruct.extractors import build_features


class Reservoir:
    """A uniform sample of at most ``size`` rows from a stream of row blocks."""

    def __init__(self, size: int, seed: int = 0):
        self.size, self.seen, self.rows = size, 0, None
        self.rng = np.random.default_rng(seed)

    def add(self, block: np.ndarray) -> None:
        if self.rows is None:
            self.rows = np.empty((self.size, block.shape[1]), np.float32)
        position = self.seen + np.arange(len(block))
        fill = position < self.size
        self.rows[position[fill]] = block[fill]
        # Algorithm R: row t replaces a random slot with probability size / (t + 1)
        slot = self.rng.integers(0, position[~fill] + 1)
        keep = slot < self.size
        self.rows[slot[keep]] = block[~fill][keep]
        self.seen += len(block)

    def sample(self) -> np.ndarray:
        return self.rows[: min(self.seen, self.size)]


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt learn-kmeans", description=__doc__)
    arguments.add_corpus_args(parser)
    arguments.add_extractor_args(parser)
    parser.add_argument("--k", type=int, required=True, help="number of clusters (units)")
    parser.add_argument("--output", required=True, help="centroids file (.npy); a .json beside")
    parser.add_argument("--max-frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.output.endswith(".npy"):
        parser.error("--output must end in .npy")
    spec = arguments.extractor_spec(args)
    features = build_features(spec)
    reservoir = Reservoir(args.max_frames, args.seed)
    start, used, rejected = time.perf_counter(), 0, 0
    for record in sources.read(args.corpus, args.input, args.split):
        wave = record if isinstance(record, Reject) else decode(record, arguments.limits(args))
        if isinstance(wave, Reject):
            rejected += 1
            continue
        reservoir.add(features.features([wave])[0])
        used += 1
        if used % 100 == 0:
            print(f"learn-kmeans: {used} utterances, {reservoir.seen} frames", flush=True)
    frames = reservoir.sample()
    print(f"learn-kmeans: fitting k={args.k} on {len(frames)} of {reservoir.seen} frames "
          f"({used} utterances, {rejected} rejected)", flush=True)  # fmt: skip
    centroids, inertia = kmeans.learn(frames, args.k, kmeans.KMeansConfig(seed=args.seed))
    info = kmeans.save(args.output, centroids, {
        "extractor": spec.name,
        "layer": spec.layer if spec.name == "hubert" else None,
        "checkpoint": spec.checkpoint,
        "corpus": args.corpus,
        "split": args.split,
        "utterances": used,
        "frames_seen": reservoir.seen,
        "frames_used": len(frames),
        "inertia": inertia,
        "seconds": round(time.perf_counter() - start, 1),
    })  # fmt: skip
    print(f"learn-kmeans: wrote {args.output} (inertia {inertia:.1f})")
    return info

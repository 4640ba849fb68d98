"""``speechgpt learn-kmeans``: sample utterances, featurize them, fit k-means, save centroids.

Work and memory stay bounded, as with fairseq's ``percent``: the corpus is read inside a Beam
job that keeps a seeded sample of utterances (``--sample-fraction``, then at most
``--max-utterances``, chosen by a hash of seed and id, so the same sample on any runner);
only those are decoded and featurized, and their frames are reservoir-sampled down to
``--max-frames``. Corpus and centroids file may be URIs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import tempfile
import time

import apache_beam as beam
import numpy as np

from pipelines import arguments, sources
from pipelines.audio import decode
from pipelines.records import AudioSource, Reject, Utterance
from pipelines.steps.read import ReadCorpus, UniqueIds
from speechinstruct import kmeans, storage
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


def draw(seed: int, id_: str) -> float:
    """A number in [0, 1) fixed by seed and id: the sample is the same on every runner."""
    digest = hashlib.blake2b(f"{seed}:{id_}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def _write_sample(utterances: list[Utterance], path: str) -> None:
    rows = [
        {
            **{f: getattr(u, f) for f in ("id", "corpus", "split", "speaker", "text")},
            "source": u.source.to_row(),
        }
        for u in sorted(utterances, key=lambda u: u.id)
    ]
    storage.write_json(path, rows)


def _read_sample(path: str) -> list[Utterance]:
    return [
        Utterance(
            r["id"], r["corpus"], r["split"], r["speaker"], r["text"], AudioSource(**r["source"])
        )
        for r in storage.read_json(path)
    ]


def sample_utterances(source, fraction: float, count: int, seed: int, path: str, options) -> None:
    """Run the sampling job: at most ``count`` utterances of ``fraction`` of the corpus."""
    with beam.Pipeline(options=options) as p:
        _ = (
            p
            | "Read" >> ReadCorpus(source)
            | "UniqueIds" >> UniqueIds()
            | "Utterances" >> beam.Filter(lambda r: isinstance(r, Utterance))
            | "Fraction" >> beam.Filter(lambda u: draw(seed, u.id) < fraction)
            | "Sample" >> beam.combiners.Top.Smallest(count, key=lambda u: draw(seed, u.id))
            | "WriteSample" >> beam.Map(_write_sample, path)
        )


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt learn-kmeans", description=__doc__)
    arguments.add_corpus_args(parser)
    arguments.add_extractor_args(parser)
    parser.add_argument("--k", type=int, required=True, help="number of clusters (units)")
    parser.add_argument(
        "--output", required=True, help="centroids file (.npy, path or URI); a .json beside"
    )
    parser.add_argument(
        "--sample-fraction",
        type=float,
        default=1.0,
        help="share of the utterances to draw from (fairseq's percent)",
    )
    parser.add_argument(
        "--max-utterances",
        type=int,
        default=10_000,
        help="at most this many sampled utterances are featurized",
    )
    parser.add_argument("--max-frames", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args, beam_args = parser.parse_known_args(argv)
    if not args.output.endswith(".npy"):
        parser.error("--output must end in .npy")
    if not 0 < args.sample_fraction <= 1:
        parser.error("--sample-fraction must be in (0, 1]")
    options = arguments.pipeline_options(beam_args)
    storage.configure(options)
    spec = arguments.extractor_spec(args)
    source = sources.source(args.corpus, args.input, args.split)
    source.check()
    output = storage.normalize(args.output)
    start = time.perf_counter()
    stage = storage.start(output)
    sample_path = storage.join(stage, "sample.json")
    sample_utterances(
        source, args.sample_fraction, args.max_utterances, args.seed, sample_path, options
    )
    utterances = _read_sample(sample_path)
    storage.delete_tree(stage)
    print(f"learn-kmeans: featurizing {len(utterances)} sampled utterances", flush=True)
    if spec.checkpoint:
        spec = dataclasses.replace(spec, checkpoint=storage.local_copy(spec.checkpoint))
    features = build_features(spec)
    reservoir = Reservoir(args.max_frames, args.seed)
    used, rejected = 0, 0
    for utterance in utterances:
        wave = decode(utterance, arguments.limits(args))
        if isinstance(wave, Reject):
            rejected += 1
            continue
        reservoir.add(features.features([wave])[0])
        used += 1
        if used % 100 == 0:
            print(f"learn-kmeans: {used} utterances, {reservoir.seen} frames", flush=True)
    if not used:
        raise ValueError(f"no usable utterance in the sample of {args.input} ({rejected} rejected)")
    frames = reservoir.sample()
    print(
        f"learn-kmeans: fitting k={args.k} on {len(frames)} of {reservoir.seen} frames "
        f"({used} utterances, {rejected} rejected)",
        flush=True,
    )
    centroids, inertia = kmeans.learn(frames, args.k, kmeans.KMeansConfig(seed=args.seed))
    meta = {
        "extractor": spec.name,
        "layer": spec.layer if spec.name == "hubert" else None,
        "checkpoint": args.checkpoint,
        "corpus": args.corpus,
        "split": args.split,
        "sample_fraction": args.sample_fraction,
        "max_utterances": args.max_utterances,
        "utterances": used,
        "frames_seen": reservoir.seen,
        "frames_used": len(frames),
        "inertia": inertia,
        "seconds": round(time.perf_counter() - start, 1),
    }
    info = save_centroids(output, centroids, meta)
    print(f"learn-kmeans: wrote {output} (inertia {inertia:.1f})")
    return info


def save_centroids(output: str, centroids: np.ndarray, meta: dict) -> dict:
    """``kmeans.save`` to a local path, or to a URI through a local folder."""
    if not storage.is_remote(output):
        return kmeans.save(output, centroids, meta)
    with tempfile.TemporaryDirectory() as local:
        info = kmeans.save(f"{local}/centroids.npy", centroids, meta)
        storage.copy_file(f"{local}/centroids.npy", output)
        storage.copy_file(f"{local}/centroids.json", output[: -len(".npy")] + ".json")
    return info

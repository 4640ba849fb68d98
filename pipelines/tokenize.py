"""``speechgpt tokenize``: a corpus → deduplicated discrete-unit shards (Beam).

read → decode → ExtractUnits (RunInference) → reduce → dedup (audio, then frame units) →
``OUT/units``, ``OUT/rejects``, ``OUT/duplicates`` (Parquet shards) and ``OUT/stats.json``.
Every record read ends as exactly one kept row, reject or duplicate. Beam options come
from the same argv (``--runner=…``); with none, the in-process ``FnApiRunner`` runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from collections import Counter
from pathlib import Path

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.ml.inference.base import RunInference

from pipelines import arguments, sources
from pipelines.records import Reject
from pipelines.shards import MAX_SHARD_BYTES, replace_folder
from pipelines.steps.decode import REJECTS, DecodeFn
from pipelines.steps.dedup import DUPLICATES, Deduplicate
from pipelines.steps.extract import UnitModelHandler
from pipelines.steps.write import WriteTable
from speechinstruct.extractors import ExtractorSpec, load_centroids
from speechinstruct.kmeans import centroids_hash
from speechinstruct.units import reduce

TABLES = ("units", "rejects", "duplicates")


def unit_row(result, extractor: dict) -> dict:
    """A ``units`` row (plus the private dedup key ``_units_hash``) from a prediction."""
    decoded, frames = result.example, result.inference
    units, durations = reduce(frames)
    utt, src = decoded.utt, decoded.utt.source
    return {
        "id": utt.id,
        "corpus": utt.corpus,
        "split": utt.split,
        "speaker": utt.speaker,
        "text": utt.text,
        "units": units.tolist(),
        "durations": durations.tolist(),
        "num_frames": len(frames),
        "duration_s": round(len(decoded.wave) / 16_000, 4),
        "source": src.to_row(),
        "extractor": extractor,
        "content_hash": decoded.audio_hash,
        "_units_hash": hashlib.sha256(frames.astype("<i2").tobytes()).hexdigest(),
    }


def build(p: beam.Pipeline, records: list, spec: ExtractorSpec, kmeans: str, extractor: dict,
          limits, staging: str, batch_size: int, max_shard_bytes: int) -> None:  # fmt: skip
    """The pipeline graph, writing the three tables under ``staging``."""
    read = p | "Read" >> beam.Create(records, reshuffle=True)
    read_rejects = read | "ReadRejects" >> beam.Filter(lambda r: isinstance(r, Reject))
    decoded = (
        read
        | "Utterances" >> beam.Filter(lambda r: not isinstance(r, Reject))
        | "Decode" >> beam.ParDo(DecodeFn(limits)).with_outputs(REJECTS, main="ok")
    )
    rows = (
        decoded.ok
        | "ExtractUnits" >> RunInference(UnitModelHandler(spec, kmeans, batch_size))
        | "Reduce" >> beam.Map(unit_row, extractor)
    )
    by_audio = rows | "DedupAudio" >> Deduplicate("content_hash", "audio")
    by_units = by_audio.kept | "DedupUnits" >> Deduplicate("_units_hash", "units")
    outputs = {
        "units": by_units.kept,
        "rejects": (read_rejects, decoded[REJECTS])
        | "AllRejects" >> beam.Flatten()
        | "RejectRows" >> beam.Map(lambda r: r.to_row()),
        "duplicates": (by_audio[DUPLICATES], by_units[DUPLICATES])
        | "AllDuplicates" >> beam.Flatten(),
    }
    for table, pcoll in outputs.items():
        _ = pcoll | f"Write{table.title()}" >> WriteTable(
            table, f"{staging}/{table}", max_shard_bytes
        )


def count(folder: Path, table: str, column: str | None = None) -> Counter | int:
    files = sorted((folder / table).glob("*.parquet"))
    if column is None:
        return sum(pq.read_metadata(f).num_rows for f in files)
    return Counter(v for f in files for v in pq.read_table(f, columns=[column])[column].to_pylist())


def audio_seconds(folder: Path) -> float:
    files = sorted((folder / "units").glob("*.parquet"))
    return float(sum(pq.read_table(f, columns=["duration_s"])["duration_s"].to_numpy().sum()
                     for f in files))  # fmt: skip


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt tokenize", description=__doc__)
    arguments.add_corpus_args(parser)
    arguments.add_extractor_args(parser)
    parser.add_argument("--kmeans", required=True, help="centroids: .npy or a joblib .bin")
    parser.add_argument("--output", required=True, help="output folder (replaced whole)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-shard-mb", type=float, default=MAX_SHARD_BYTES / 2**20)
    args, beam_args = parser.parse_known_args(argv)
    options = arguments.pipeline_options(beam_args)

    start = time.perf_counter()
    spec = arguments.extractor_spec(args)
    centroids = load_centroids(args.kmeans)
    extractor = {"name": spec.name, "layer": spec.layer if spec.name == "hubert" else None,
                 "k": len(centroids), "centroids_hash": centroids_hash(centroids)}  # fmt: skip
    records = list(sources.read(args.corpus, args.input, args.split))
    print(f"tokenize: {len(records)} records from {args.corpus} {args.input}", flush=True)

    out = Path(args.output).resolve()
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    p = test_pipeline or beam.Pipeline(options=options)
    build(p, records, spec, args.kmeans, extractor, arguments.limits(args), str(staging),
          args.batch_size, int(args.max_shard_mb * 2**20))  # fmt: skip
    p.run().wait_until_finish()

    stats = {
        "corpus": args.corpus,
        "split": args.split,
        "read": len(records),
        "kept": count(staging, "units"),
        "rejected": dict(sorted(count(staging, "rejects", "reason").items())),
        "duplicates": dict(sorted(count(staging, "duplicates", "kind").items())),
        "audio_seconds": round(audio_seconds(staging), 2),
        "extractor": extractor,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }  # fmt: skip
    total = stats["kept"] + sum(stats["rejected"].values()) + sum(stats["duplicates"].values())
    if total != stats["read"]:
        raise RuntimeError(f"counts do not reconcile: read {stats['read']} != {total}: {stats}")
    (staging / "stats.json").write_text(json.dumps(stats, indent=1) + "\n")
    replace_folder(staging, out)
    print(f"tokenize: kept {stats['kept']}, rejected {stats['rejected']}, "
          f"duplicates {stats['duplicates']} -> {out}", flush=True)  # fmt: skip
    return stats

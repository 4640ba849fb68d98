"""``speechgpt tokenize``: a corpus → deduplicated discrete-unit shards (Beam).

read (inside the job: metadata files matched, grouped, parsed; ids made unique) → decode →
ExtractUnits (RunInference) → reduce → dedup (audio, then frame units) → ``OUT/units``,
``OUT/rejects``, ``OUT/duplicates`` (Parquet shards), ``OUT/stats.json`` and, last,
``OUT/_SUCCESS.json``. Every record read ends as exactly one kept row, reject or duplicate.
Inputs and outputs may be local paths or URIs (``gs://``, ``s3://``). Beam options come
from the same argv (``--runner=…``); with none, the in-process ``FnApiRunner`` runs it.
"""

from __future__ import annotations

import argparse
import hashlib
import time

import apache_beam as beam
from apache_beam.ml.inference.base import RunInference

from pipelines import arguments, sources
from pipelines.records import Reject, Utterance
from pipelines.shards import Shards
from pipelines.sources import Source
from pipelines.steps.decode import REJECTS, DecodeFn
from pipelines.steps.dedup import DUPLICATES, Deduplicate
from pipelines.steps.extract import UnitModelHandler
from pipelines.steps.read import ReadCorpus, UniqueIds
from pipelines.steps.summary import WriteSummary, read_summary, tables_of
from pipelines.steps.write import WriteTable
from schemas import SAMPLE_RATE
from speechinstruct import storage
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
        "duration_s": round(len(decoded.wave) / SAMPLE_RATE, 4),
        "source": src.to_row(),
        "extractor": extractor,
        "content_hash": decoded.audio_hash,
        "_units_hash": hashlib.sha256(frames.astype("<i2").tobytes()).hexdigest(),
    }


def _kept_counts(row: dict):
    yield "kept", 1
    yield "audio_ms", round(row["duration_s"] * 1000)


def build(
    p: beam.Pipeline,
    source: Source,
    spec: ExtractorSpec,
    kmeans: str,
    extractor: dict,
    limits,
    staging: str,
    batch_size: int,
    shards: Shards = Shards(),
    model_copies: int = 1,
) -> None:
    """The pipeline graph, writing the three tables and a summary under ``staging``.

    Its size does not depend on the corpus: only ``source``'s root and globs are in it.
    """
    read = p | "Read" >> ReadCorpus(source)
    unique = read | "UniqueIds" >> UniqueIds()
    read_rejects = unique | "ReadRejects" >> beam.Filter(lambda r: isinstance(r, Reject))
    decoded = (
        unique
        | "Utterances" >> beam.Filter(lambda r: isinstance(r, Utterance))
        | "Decode" >> beam.ParDo(DecodeFn(limits)).with_outputs(REJECTS, main="ok")
    )
    handler = UnitModelHandler(spec, kmeans, batch_size, model_copies=model_copies)
    rows = (
        decoded.ok
        | "ExtractUnits" >> RunInference(handler)
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
    files = [
        pcoll
        | f"Write{table.title()}"
        >> WriteTable(table, storage.join(staging, table), shards.num_shards, shards.target_bytes)
        for table, pcoll in outputs.items()
    ]
    counts = (
        read | "CountRead" >> beam.Map(lambda r: ("read", 1)),
        outputs["units"] | "CountKept" >> beam.FlatMap(_kept_counts),
        outputs["rejects"] | "CountRejects" >> beam.Map(lambda r: (f"rejected/{r['reason']}", 1)),
        outputs["duplicates"] | "CountDups" >> beam.Map(lambda r: (f"duplicates/{r['kind']}", 1)),
    ) | "AllCounts" >> beam.Flatten()
    _ = (counts, files | "AllFiles" >> beam.Flatten()) | "Summary" >> WriteSummary(staging)


def _grouped(counts: dict, prefix: str) -> dict:
    return {k.split("/", 1)[1]: n for k, n in sorted(counts.items()) if k.startswith(prefix)}


def run(argv: list[str] | None = None, test_pipeline: beam.Pipeline | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt tokenize", description=__doc__)
    arguments.add_corpus_args(parser)
    arguments.add_extractor_args(parser)
    parser.add_argument("--kmeans", required=True, help="centroids: .npy or a joblib .bin")
    parser.add_argument("--output", required=True, help="output folder or URI (replaced whole)")
    parser.add_argument("--batch-size", type=int, default=16)
    arguments.add_shard_args(parser)
    args, beam_args = parser.parse_known_args(argv)
    options = arguments.pipeline_options(beam_args)
    storage.configure(options)

    start = time.perf_counter()
    spec = arguments.extractor_spec(args)
    kmeans = storage.normalize(args.kmeans)
    centroids = load_centroids(storage.local_copy(kmeans))
    extractor = {
        "name": spec.name,
        "layer": spec.layer if spec.name == "hubert" else None,
        "k": len(centroids),
        "centroids_hash": centroids_hash(centroids),
    }
    source = sources.source(args.corpus, args.input, args.split)
    source.check()
    out = storage.normalize(args.output)
    print(f"tokenize: {args.corpus} {source.root} -> {out}", flush=True)

    staging = storage.start(out)
    p = test_pipeline or beam.Pipeline(options=options)
    build(
        p,
        source,
        spec,
        kmeans,
        extractor,
        arguments.limits(args),
        staging,
        args.batch_size,
        arguments.shards(args),
        args.model_copies,
    )
    p.run().wait_until_finish()

    summary = read_summary(staging)
    counts = summary["counts"]
    stats = {
        "corpus": args.corpus,
        "split": args.split,
        "read": counts.get("read", 0),
        "kept": counts.get("kept", 0),
        "rejected": _grouped(counts, "rejected/"),
        "duplicates": _grouped(counts, "duplicates/"),
        "audio_seconds": round(counts.get("audio_ms", 0) / 1000, 2),
        "extractor": extractor,
        "wall_seconds": round(time.perf_counter() - start, 2),
    }
    total = stats["kept"] + sum(stats["rejected"].values()) + sum(stats["duplicates"].values())
    if total != stats["read"]:
        raise RuntimeError(f"counts do not reconcile: read {stats['read']} != {total}: {stats}")
    storage.write_json(storage.join(staging, "stats.json"), stats)
    marker = {"job": "tokenize", "tables": tables_of(summary["files"]), "stats": stats}
    storage.commit(staging, out, marker)
    print(
        f"tokenize: read {stats['read']}, kept {stats['kept']}, rejected {stats['rejected']}, "
        f"duplicates {stats['duplicates']} -> {out}",
        flush=True,
    )
    return stats

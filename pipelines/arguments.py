"""Command-line arguments shared by the jobs that read a corpus and extract units."""

from __future__ import annotations

import argparse

from pipelines.audio import AudioLimits
from pipelines.shards import MAX_SHARD_BYTES, Shards
from pipelines.sources import READERS
from speechinstruct.extractors import EXTRACTORS, ExtractorSpec


def add_corpus_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, choices=sorted(READERS))
    parser.add_argument("--input", required=True, help="the corpus root as downloaded")
    parser.add_argument(
        "--split",
        help="LibriSpeech split folder, LibriLight subset, Common Voice TSV name, "
        "GigaSpeech subset (XS…), or manifest name; default: the reader's default",
    )
    parser.add_argument("--min-seconds", type=float, default=AudioLimits().min_s)
    parser.add_argument("--max-seconds", type=float, default=AudioLimits().max_s)


def add_extractor_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--extractor", default="mfcc", choices=EXTRACTORS)
    parser.add_argument("--checkpoint", help="hubert: an HF folder or a fairseq .pt")
    parser.add_argument("--layer", type=int, default=11, help="hubert layer (hidden_states[L])")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 …")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast for the model")
    parser.add_argument(
        "--model-copies",
        type=int,
        default=1,
        help="model copies per worker machine (GPU workers: one per GPU; CPU: 1, shared by the "
        "worker's processes)",
    )


def add_shard_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--num-shards", type=int, help="shards per split (default: by size)")
    parser.add_argument(
        "--max-shard-mb",
        type=float,
        default=MAX_SHARD_BYTES / 2**20,
        help="largest shard file in MB when --num-shards is not given (a single larger "
        "row gets its own file)",
    )


def shards(args: argparse.Namespace) -> Shards:
    return Shards(args.num_shards, int(args.max_shard_mb * 2**20))


def pipeline_options(beam_args: list[str]):
    """Beam options from the argv's leftovers; with no ``--runner``, the in-process
    ``FnApiRunner`` (Beam's DirectRunner first tries to download Prism, which fails offline)."""
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    options = PipelineOptions(beam_args)
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = "FnApiRunner"
    return options


def limits(args: argparse.Namespace) -> AudioLimits:
    return AudioLimits(min_s=args.min_seconds, max_s=args.max_seconds)


def extractor_spec(args: argparse.Namespace) -> ExtractorSpec:
    return ExtractorSpec(args.extractor, args.checkpoint, args.layer, args.device, args.bf16)

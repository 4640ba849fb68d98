"""Shards of a table: which shard a row goes to, how many, and one shard's Parquet bytes.

Rows go to shard ``hash(id) % N`` of their split (a stable hash, so every worker and every
run agrees). N comes from the caller or from the split's estimated size (~256 MB a shard);
a shard that still comes out over the size is cut into runs of rows that fit.
Files are named as the Hub names them: ``<split>-NNNNN-of-NNNNN.parquet``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import to_table, validate

MAX_SHARD_BYTES = 256 * 2**20


@dataclass(frozen=True, slots=True)
class Shards:
    """How a job shards its tables: a fixed count per split, or by a target size."""

    num_shards: int | None = None
    target_bytes: int = MAX_SHARD_BYTES


def shard_name(index: int, count: int, split: str = "train") -> str:
    return f"{split}-{index:05d}-of-{count:05d}.parquet"


def bucket(id_: str, count: int) -> int:
    """The shard of a row id among ``count``: stable across processes (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(id_.encode(), digest_size=8).digest(), "big") % count


def shard_count(
    rows: int, estimated_bytes: int, num_shards: int | None, target_bytes: int = MAX_SHARD_BYTES
) -> int:
    """``num_shards`` if given, else enough shards of ``target_bytes``; never more than rows."""
    wanted = num_shards or math.ceil(estimated_bytes / target_bytes)
    return max(1, min(rows, wanted))


def estimate_bytes(value) -> int:
    """A row's rough size in Arrow (unit lists are int16), to plan shard counts."""
    if isinstance(value, dict):
        return sum(estimate_bytes(v) for v in value.values())
    if isinstance(value, list | tuple):
        return (
            4 + 2 * len(value)
            if value and isinstance(value[0], int)
            else 4 + sum(estimate_bytes(v) for v in value)
        )
    if isinstance(value, str):
        return 4 + len(value.encode())
    return 8


def sort_key(row: dict) -> tuple[str, str]:
    """Rows sort by id; rows sharing an id (rejects) by their whole content."""
    return row["id"], json.dumps(row, sort_keys=True, default=str)


def encode_shard(rows: list[dict], table: str) -> bytes:
    """One validated shard, rows sorted by ``sort_key``, as Parquet (zstd) bytes."""
    data = validate(to_table(table, sorted(rows, key=sort_key)), table)
    sink = pa.BufferOutputStream()
    pq.write_table(data, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def runs_that_fit(rows: list[dict], table: str, max_bytes: int) -> list[list[dict]]:
    """Rows (sorted by ``sort_key``) cut into runs whose Parquet file is at most ``max_bytes``.

    Hash buckets are unequal and the size estimate is rough, so a bucket can come out over
    the bound; it is cut into about equal runs until each fits. A file over the bound holds
    a single row that alone is bigger.
    """
    size = len(encode_shard(rows, table))
    if size <= max_bytes or len(rows) == 1:
        return [rows]
    parts = min(len(rows), math.ceil(size / max_bytes))
    cuts = [len(rows) * i // parts for i in range(parts + 1)]
    return [
        run
        for a, b in itertools.pairwise(cuts)
        for run in runs_that_fit(rows[a:b], table, max_bytes)
    ]

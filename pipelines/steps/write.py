"""Write a table as Parquet shards keyed by ``(split, hash(id) % N)``, one worker a shard.

No step holds the table: sizes are combined per split, rows are grouped per shard, and each
shard is sorted and written by its own worker through ``FileSystems``. Files are numbered
among the non-empty shards of their split, so there is no empty file and the names say
``-of-<count>``. The output is one record per file (table, split, file, rows).
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.shards import (
    MAX_SHARD_BYTES,
    bucket,
    encode_shard,
    estimate_bytes,
    shard_count,
    shard_name,
)
from speechinstruct import storage

SPLIT = "_split"  # a private key naming a row's split; dropped before writing


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


def split_of(row: dict) -> str:
    return row.get(SPLIT, "train")


def _add_pairs(pairs) -> tuple[int, int]:
    rows = size = 0
    for n, b in pairs:
        rows, size = rows + n, size + b
    return rows, size


class ShardIndex(beam.CombineFn):
    """``(split, shard)`` keys → ``{split: sorted shard numbers}`` (a few numbers a split)."""

    def create_accumulator(self):
        return {}

    def add_input(self, acc, key):
        acc.setdefault(key[0], set()).add(key[1])
        return acc

    def merge_accumulators(self, accs):
        merged: dict = {}
        for acc in accs:
            for split, shards in acc.items():
                merged.setdefault(split, set()).update(shards)
        return merged

    def extract_output(self, acc):
        return {split: sorted(shards) for split, shards in acc.items()}


class WriteShardFn(beam.DoFn):
    """One shard's rows → ``folder/<split>-NNNNN-of-NNNNN.parquet``; yields its file record."""

    def __init__(self, table: str, folder: str):
        self.table, self.folder = table, folder
        self.rows = beam.metrics.Metrics.counter("write", f"{table}_rows")

    def process(self, element, index: dict):
        (split, shard), rows = element
        shards = index[split]
        name = shard_name(shards.index(shard), len(shards), split)
        rows = [public(r) for r in rows]
        storage.write_bytes(storage.join(self.folder, name), encode_shard(rows, self.table))
        self.rows.inc(len(rows))
        yield {"table": self.table, "split": split, "file": name, "rows": len(rows)}


class WriteTable(beam.PTransform):
    """Rows → ``folder/<split>-*.parquet`` shards, sorted by id; → one record per file."""

    def __init__(
        self,
        table: str,
        folder: str,
        num_shards: int | None = None,
        target_bytes: int = MAX_SHARD_BYTES,
    ):
        super().__init__()
        self.table, self.folder = table, folder
        self.num_shards, self.target_bytes = num_shards, target_bytes

    def expand(self, rows):
        num_shards, target = self.num_shards, self.target_bytes
        counts = (
            rows
            | "Size" >> beam.Map(lambda r: (split_of(r), (1, estimate_bytes(public(r)))))
            | "SplitSize" >> beam.CombinePerKey(_add_pairs)
            | "ShardCount" >> beam.MapTuple(lambda s, rb: (s, shard_count(*rb, num_shards, target)))
        )
        shards = (
            rows
            | "ToShard"
            >> beam.Map(
                lambda r, n: ((split_of(r), bucket(r["id"], n[split_of(r)])), r),
                beam.pvalue.AsDict(counts),
            )
            | "GroupShard" >> beam.GroupByKey()
        )
        index = (
            shards
            | "ShardKey" >> beam.Map(lambda kv: kv[0])
            | "ShardIndex" >> beam.CombineGlobally(ShardIndex())
        )
        return shards | "WriteShard" >> beam.ParDo(
            WriteShardFn(self.table, self.folder), beam.pvalue.AsSingleton(index)
        )

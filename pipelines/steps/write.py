"""Write a table as Parquet shards keyed by ``(split, hash(id) % N)``, one worker a shard.

No step holds the table: sizes are combined per split, rows are grouped per shard, and each
shard is sorted and written by its own worker through ``FileSystems``. Sized by the estimate,
a shard whose file would be over the bound is first cut into runs of rows that fit (a file
each). Files are numbered among the non-empty runs of their split, so there is no empty file
and the names say ``-of-<count>``. The output is one record per file (table, split, file, rows).
"""

from __future__ import annotations

import bisect

import apache_beam as beam

from pipelines.shards import (
    MAX_SHARD_BYTES,
    bucket,
    encode_shard,
    estimate_bytes,
    runs_that_fit,
    shard_count,
    shard_name,
    sort_key,
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


class CutShardFn(beam.DoFn):
    """One shard's rows → ``((split, (shard, run)), rows)``: one run, or, with a size bound,
    as many as it takes for each run's file to fit."""

    def __init__(self, table: str, max_bytes: int | None):
        self.table, self.max_bytes = table, max_bytes
        self.extra = beam.metrics.Metrics.counter("write", f"{table}_extra_files")

    def process(self, element):
        (split, shard), rows = element
        rows = [public(r) for r in rows]
        if self.max_bytes is None:
            yield (split, (shard, 0)), rows
            return
        runs = runs_that_fit(sorted(rows, key=sort_key), self.table, self.max_bytes)
        if len(runs) > 1:
            self.extra.inc(len(runs) - 1)
        for i, run in enumerate(runs):
            yield (split, (shard, i)), run


class ShardIndex(beam.CombineFn):
    """``(split, shard)`` keys → ``{split: sorted shard keys}`` (a few keys a split)."""

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
        name = shard_name(bisect.bisect_left(shards, shard), len(shards), split)
        rows = [public(r) for r in rows]
        storage.write_bytes(storage.join(self.folder, name), encode_shard(rows, self.table))
        self.rows.inc(len(rows))
        yield {"table": self.table, "split": split, "file": name, "rows": len(rows)}


class WriteTable(beam.PTransform):
    """Rows → ``folder/<split>-*.parquet`` shards, sorted by id; → one record per file.

    With ``num_shards`` a split has that many shards (fewer if it has fewer rows); without,
    as many as its estimated size needs and no file over ``target_bytes`` (but a lone row
    bigger than that).
    """

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
            | "CutShard" >> beam.ParDo(CutShardFn(self.table, None if num_shards else target))
        )
        index = (
            shards
            | "ShardKey" >> beam.Map(lambda kv: kv[0])
            | "ShardIndex" >> beam.CombineGlobally(ShardIndex())
        )
        return shards | "WriteShard" >> beam.ParDo(
            WriteShardFn(self.table, self.folder), beam.pvalue.AsSingleton(index)
        )

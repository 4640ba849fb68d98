"""Write a table's rows as Parquet shards per split (``<split>-NNNNN-of-NNNNN.parquet``)."""

from __future__ import annotations

import apache_beam as beam

from pipelines.shards import MAX_SHARD_BYTES, write_shards

SPLIT = "_split"  # a private key naming a row's split; dropped before writing


def public(row: dict) -> dict:
    return {k: v for k, v in row.items() if not k.startswith("_")}


class WriteTable(beam.PTransform):
    """Rows → ``folder/<split>-*.parquet``, one writer per split, rows sorted by id."""

    def __init__(self, table: str, folder: str, max_bytes: int = MAX_SHARD_BYTES):
        super().__init__()
        self.table, self.folder, self.max_bytes = table, folder, max_bytes

    def expand(self, rows):
        table, folder, max_bytes = self.table, self.folder, self.max_bytes
        return (
            rows
            | "BySplit" >> beam.Map(lambda r: (r.get(SPLIT, "train"), public(r)))
            | "GroupSplit" >> beam.GroupByKey()
            | "WriteShards" >> beam.MapTuple(
                lambda split, group: write_shards(list(group), table, folder, split, max_bytes)
            )
        )  # fmt: skip

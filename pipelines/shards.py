"""Write a table as size-bounded Parquet shards with HF names (``train-00000-of-00004``)."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq

from schemas import to_table, validate

MAX_SHARD_BYTES = 256 * 2**20


def shard_names(n: int, prefix: str = "train") -> list[str]:
    return [f"{prefix}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]


def write_shards(rows: list[dict], table: str, folder: str | Path, prefix: str = "train",
                 max_bytes: int = MAX_SHARD_BYTES) -> list[str]:  # fmt: skip
    """Validate and write ``rows`` sorted by id; no shard is empty, none passes ``max_bytes``
    (in Arrow memory, which Parquet only shrinks). Returns the file names."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if not rows:
        return []
    data = validate(to_table(table, sorted(rows, key=lambda r: r["id"])), table)
    n = min(len(rows), max(1, math.ceil(data.nbytes / max_bytes)))
    names = shard_names(n, prefix)
    bounds = [round(i * len(rows) / n) for i in range(n + 1)]
    for name, lo, hi in zip(names, bounds, bounds[1:], strict=False):
        pq.write_table(data.slice(lo, hi - lo), folder / name, compression="zstd")
    return names


def replace_folder(staging: Path, final: Path) -> None:
    """Move a finished output into place whole: the old one goes only once the new is done."""
    if final.exists():
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old)
    else:
        os.rename(staging, final)

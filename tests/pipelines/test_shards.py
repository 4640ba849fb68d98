"""The shard size bound: no file of a table written by size is over ``--max-shard-mb``."""

import hashlib
import random

import apache_beam as beam
import pyarrow.parquet as pq
from apache_beam.metrics.metric import MetricsFilter

from pipelines import arguments, tokenize
from pipelines.shards import encode_shard, estimate_bytes, runs_that_fit, sort_key
from pipelines.steps.write import SPLIT, WriteTable
from tests.conftest import CORPORA

BOUND = 8000


def _rows(n: int) -> list[dict]:
    """Units that do not compress: Parquet comes out over the size estimate, and hash
    buckets are unequal, so shards planned by the estimate alone are over the bound."""
    rng = random.Random(0)
    return [
        {
            "id": f"utt{i:05d}",
            "units": [rng.randrange(30_000) for _ in range(rng.randrange(50, 150))],
            SPLIT: "validation" if i % 4 == 0 else "train",
        }
        for i in range(n)
    ]


def _write(rows: list[dict], folder) -> dict[str, int]:
    """Rows written by size, bounded by ``BOUND``; the writer's counters."""
    p = beam.Pipeline(options=arguments.pipeline_options([]))
    _ = p | beam.Create(rows) | WriteTable("pretrain", str(folder), None, BOUND)
    result = p.run()
    result.wait_until_finish()
    counters = result.metrics().query(MetricsFilter().with_namespace("write"))["counters"]
    return {c.key.metric.name: c.committed for c in counters}


def test_no_file_is_over_the_bound(tmp_path):
    rows = _rows(400)
    planned = sum(estimate_bytes({"id": r["id"], "units": r["units"]}) for r in rows) / BOUND
    counters = _write(rows, tmp_path / "a")
    files = sorted((tmp_path / "a").glob("*.parquet"))
    assert all(f.stat().st_size <= BOUND for f in files), [f.stat().st_size for f in files]
    assert len(files) > planned + 2  # more files than the estimate planned: some were cut
    assert counters["pretrain_extra_files"] > 0 and counters["pretrain_rows"] == len(rows)
    back = []
    for split in ("train", "validation"):
        names = sorted(f.name for f in files if f.name.startswith(f"{split}-"))
        n = len(names)
        assert names == [f"{split}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        for name in names:
            shard = pq.read_table(tmp_path / "a" / name).to_pylist()
            ids = [r["id"] for r in shard]
            assert shard and ids == sorted(ids)
            back += [(split, r["id"], r["units"]) for r in shard]
    assert sorted(back) == sorted((r[SPLIT], r["id"], r["units"]) for r in rows)

    _write(list(reversed(rows)), tmp_path / "b")
    digest = {
        folder: {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.glob("*")}
        for folder in (tmp_path / "a", tmp_path / "b")
    }
    assert digest[tmp_path / "a"] == digest[tmp_path / "b"]


def test_runs_that_fit_keep_the_order_and_only_a_lone_row_is_over():
    rows = sorted(({"id": r["id"], "units": r["units"]} for r in _rows(60)), key=sort_key)
    big = {"id": "utt00007x", "units": list(range(5000))}  # alone over the bound
    rows = sorted([*rows, big], key=sort_key)
    runs = runs_that_fit(rows, "pretrain", BOUND)
    assert [r for run in runs for r in run] == rows and all(runs)
    assert [run for run in runs if len(encode_shard(run, "pretrain")) > BOUND] == [[big]]
    assert len(runs) > 2
    assert runs_that_fit(rows[:3], "pretrain", BOUND) == [rows[:3]]


def test_tokenize_keeps_max_shard_mb(sample, made, tmp_path):
    """Through the CLI: a units table bounded by ``--max-shard-mb`` has no file over it."""
    folder, split = CORPORA["librilight"]
    mb = 0.008
    stats = tokenize.run(
        [
            "--corpus",
            "librilight",
            "--input",
            str(sample["root"] / folder),
            "--split",
            split,
            "--kmeans",
            made["km"],
            "--output",
            str(tmp_path / "o"),
            "--max-shard-mb",
            str(mb),
        ]
    )
    files = sorted((tmp_path / "o" / "units").glob("*.parquet"))
    assert len(files) > 1
    assert all(f.stat().st_size <= mb * 2**20 for f in files), [f.stat().st_size for f in files]
    assert sum(pq.read_metadata(f).num_rows for f in files) == stats["kept"]

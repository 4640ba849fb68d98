import json

import apache_beam as beam
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines.steps.write import SPLIT, ShardIndex, WriteShardFn, WriteTable
from speechinstruct import storage
from tests.pipelines.steps.conftest import TEXTS, counters, run


def _pretrain(id_: str) -> dict:
    split = "validation" if id_.startswith("9902") else "train"
    return {"id": id_, "units": [ord(c) % 50 for c in TEXTS[id_]], SPLIT: split}


def _duplicate(id_: str) -> dict:
    return {
        "id": id_,
        "duplicate_of": "9901-99011-0000",
        "corpus": "librispeech",
        "source": None,
        "kind": "audio",
    }


ROWS = {  # a table with two splits (private ``_split`` key), one without: ids not in order
    "pretrain": [_pretrain(i) for i in sorted(TEXTS, reverse=True)],
    "duplicates": [_duplicate(i) for i in sorted(TEXTS)[9:1:-1]],
}


def _public(rows: list[dict]) -> list[dict]:
    return sorted(({k: v for k, v in r.items() if k != SPLIT} for r in rows), key=lambda r: r["id"])


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Both tables written by one pipeline: the folder, the file records, the counters."""
    out = tmp_path_factory.mktemp("write")
    p = TestPipeline()
    records = [
        p
        | f"Rows{t}" >> beam.Create(rows)
        | f"Write{t}" >> WriteTable(t, str(out / t), num_shards=3)
        for t, rows in ROWS.items()
    ]
    _ = (
        records
        | beam.Flatten()
        | beam.combiners.ToList()
        | beam.Map(lambda files, path=str(out / "files.json"): storage.write_json(path, files))
    )
    got = counters(run(p), "write")
    return out, json.loads((out / "files.json").read_text()), got


@pytest.mark.parametrize("table", sorted(ROWS))
def test_write_table_writes_every_row_once_in_sorted_named_shards(written, table):
    out, files, got = written
    rows = ROWS[table]
    records = [f for f in files if f["table"] == table]
    assert sorted(p.name for p in (out / table).iterdir()) == sorted(f["file"] for f in records)
    back = []
    for split in {r.get(SPLIT, "train") for r in rows}:
        names = sorted(f["file"] for f in records if f["split"] == split)
        n = len(names)
        assert names == [f"{split}-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
        in_split = [r for r in rows if r.get(SPLIT, "train") == split]
        assert sum(f["rows"] for f in records if f["split"] == split) == len(in_split)
        for name in names:
            shard = pq.read_table(out / table / name).to_pylist()
            assert shard and [r["id"] for r in shard] == sorted(r["id"] for r in shard)
            back += shard
    assert sorted(back, key=lambda r: r["id"]) == _public(rows)
    assert got[f"{table}_rows"] == len(rows)
    assert set(got) == {f"{t}_rows" for t in ROWS}


def test_write_shard_fn_process(tmp_path):
    rows = ROWS["pretrain"][:4]
    fn = WriteShardFn("pretrain", str(tmp_path))
    (record,) = fn.process((("validation", 7), rows), {"validation": [2, 7]})
    name = "validation-00001-of-00002.parquet"
    assert record == {"table": "pretrain", "split": "validation", "file": name, "rows": 4}
    assert pq.read_table(tmp_path / name).to_pylist() == _public(rows)


def test_shard_index_lists_the_shards_of_each_split():
    fn = ShardIndex()
    a = fn.add_input(fn.add_input(fn.create_accumulator(), ("train", 4)), ("train", 1))
    b = fn.add_input(fn.create_accumulator(), ("validation", 0))
    c = fn.add_input(fn.create_accumulator(), ("train", 4))
    merged = fn.merge_accumulators([a, b, c])
    assert fn.extract_output(merged) == {"train": [1, 4], "validation": [0]}

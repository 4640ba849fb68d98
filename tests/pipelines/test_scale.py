"""The builder at corpus scale: a job graph that does not grow with the corpus, shards
written in parallel (N files, each sorted, same bytes on a rerun, none empty), outputs that
appear whole behind their marker."""

import hashlib
import json

import apache_beam as beam
import pyarrow.parquet as pq
import pytest

from pipelines import arguments, build, sources, tokenize
from pipelines.audio import AudioLimits
from pipelines.steps.write import SPLIT, WriteTable
from speechinstruct import storage
from speechinstruct.extractors import ExtractorSpec
from tests.conftest import CORPORA

EXTRACTOR = {"name": "mfcc", "layer": None, "k": 16, "centroids_hash": "0"}


def _manifest(folder, rows: int):
    folder.mkdir()
    lines = ["id\tpath\ttext\tspeaker\tstart\tend"]
    lines += [
        f"seg{i:06d}\taudio/long.flac\tword {i}\tspk{i % 7}\t{i}\t{i + 2}" for i in range(rows)
    ]
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    return folder


def _graph_bytes(folder, km) -> int:
    p = beam.Pipeline(options=arguments.pipeline_options([]))
    source = sources.source("manifest", str(folder))
    tokenize.build(p, source, ExtractorSpec("mfcc"), km, EXTRACTOR, AudioLimits(), "/x/stage", 16)
    return p.to_runner_api().ByteSize()


def test_graph_size_does_not_depend_on_the_corpus(tmp_path):
    small = _graph_bytes(_manifest(tmp_path / "small", 100), "/x/km.npy")
    large = _graph_bytes(_manifest(tmp_path / "large", 10_000), "/x/km.npy")
    assert abs(large - small) < 1024, (small, large)


def _rows(n: int) -> list[dict]:
    return [
        {
            "id": f"utt{i:05d}",
            "units": [i % 50, (i * 7) % 50],
            SPLIT: "train" if i % 5 else "validation",
        }
        for i in range(n)
    ]


def _write(rows, folder, num_shards):
    with beam.Pipeline(options=arguments.pipeline_options([])) as p:
        files = p | beam.Create(rows) | WriteTable("pretrain", str(folder), num_shards)
        _ = files | beam.Map(lambda f: storage.write_json(str(folder / f"{f['file']}.json"), f))


def _digest(folder) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))
    }


def test_shard_writer(tmp_path):
    rows = _rows(400)
    _write(rows, tmp_path / "a", 4)
    names = sorted(p.name for p in (tmp_path / "a").glob("*.parquet"))
    assert names == [
        f"{s}-{i:05d}-of-00004.parquet" for s in ("train", "validation") for i in range(4)
    ]
    seen = []
    for name in names:
        ids = pq.read_table(tmp_path / "a" / name)["id"].to_pylist()
        assert ids and ids == sorted(ids)
        record = json.loads((tmp_path / "a" / f"{name}.json").read_text())
        assert record["rows"] == len(ids) and record["table"] == "pretrain"
        seen += ids
    assert sorted(seen) == [r["id"] for r in rows]
    _write(list(reversed(rows)), tmp_path / "b", 4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")


def test_shard_writer_never_writes_an_empty_shard(tmp_path):
    _write(_rows(3), tmp_path / "few", 10)
    names = sorted(p.name for p in (tmp_path / "few").glob("*.parquet"))
    # 2 train rows and 1 validation row: at most that many shards, numbered without gaps
    assert names == [
        "train-00000-of-00002.parquet",
        "train-00001-of-00002.parquet",
        "validation-00000-of-00001.parquet",
    ]
    assert all(pq.read_metadata(tmp_path / "few" / n).num_rows == 1 for n in names)


def test_shards_by_size(tmp_path):
    rows = _rows(1000)
    with beam.Pipeline(options=arguments.pipeline_options([])) as p:
        _ = p | beam.Create(rows) | WriteTable("pretrain", str(tmp_path), None, 4096)
    train = sorted(tmp_path.glob("train-*.parquet"))
    assert len(train) > 2 and all(n.name.endswith(f"-of-{len(train):05d}.parquet") for n in train)


def test_outputs_appear_whole_and_consumers_refuse_unfinished_ones(sample, made, tmp_path):
    out = tmp_path / "units"
    folder, _split = CORPORA["librispeech"]
    argv = [
        "--corpus",
        "librispeech",
        "--input",
        str(sample["root"] / folder),
        "--kmeans",
        made["km"],
        "--output",
        str(out),
    ]
    stats = tokenize.run(argv)
    marker = json.loads((out / storage.MARKER).read_text())
    assert marker["stats"] == stats == json.loads((out / "stats.json").read_text())
    files = marker["tables"]["units"]["files"]
    assert files == sorted(f"units/{p.name}" for p in (out / "units").glob("*.parquet"))
    assert sum(marker["tables"]["units"]["rows"].values()) == stats["kept"]
    (out / "stale.txt").write_text("from an older run")
    tokenize.run(argv)
    assert not (out / "stale.txt").exists() and not (tmp_path / "units.partial").exists()

    (out / storage.MARKER).unlink()
    with pytest.raises(FileNotFoundError, match=r"_SUCCESS\.json"):
        build.run(
            [
                "--units",
                str(out),
                "--chats",
                str(made["work"] / "chats.json"),
                "--speech-backend",
                "tts",
                "--kmeans",
                made["km"],
                "--output",
                str(tmp_path / "build"),
            ]
        )
    from speechinstruct.t2u import train as t2u_train

    with pytest.raises(FileNotFoundError, match=r"_SUCCESS\.json"):
        t2u_train.read_pairs([str(out)])


def test_build_keeps_one_unit_row_per_id():
    """The same utterance in two ``--units`` inputs: one row is used, the other is a reject."""
    rows = [
        {"id": "u1", "corpus": "librispeech", "source": {"path": "b.flac"}, "units": [2]},
        {"id": "u1", "corpus": "librispeech", "source": {"path": "a.flac"}, "units": [1]},
    ]
    kept, rejected = [], []
    for out in build._one_per_id("u1", rows):
        (rejected if isinstance(out, beam.pvalue.TaggedOutput) else kept).append(out)
    assert kept == [rows[1]]
    ((tag, reject),) = [(r.tag, r.value) for r in rejected]
    assert tag == build.REJECTS and reject["id"] == "u1" and reject["reason"] == "bad_metadata"
    assert reject["source"] == {"path": "b.flac"} and reject["corpus"] == "librispeech"

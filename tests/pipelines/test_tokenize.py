import hashlib
import itertools
import json
import re
import shutil
import socket

import apache_beam as beam
import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
import torch
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines import learn_kmeans, sources, tokenize
from pipelines.records import Utterance
from pipelines.samples import LAYOUT
from pipelines.steps.dedup import DUPLICATES, Deduplicate
from schemas import validate
from tests.speechinstruct.test_checkpoints import save_fairseq
from tests.speechinstruct.test_hubert import (
    fairseq_weights,
    reference_features,
    reference_model,
    tiny_cfg,
)
from tests.speechinstruct.test_mfcc import reference_mfcc

K = 16
CORPORA = LAYOUT  # corpus: (folder under the corpora root, split)


@pytest.fixture(scope="module")
def km(sample, tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("km") / "mfcc16.npy")
    root = sample["root"] / "LibriSpeech"
    info = learn_kmeans.run(
        [
            "--corpus",
            "librispeech",
            "--input",
            str(root),
            "--k",
            str(K),
            "--output",
            out,
            "--max-frames",
            "3000",
        ]
    )
    assert info["k"] == K and info["frames_used"] == 3000 < info["frames_seen"]
    return out


def _tokenize(root, corpus, km, out, *extra) -> dict:
    folder, split = CORPORA[corpus]
    argv = [
        "--corpus",
        corpus,
        "--input",
        str(root / folder),
        "--kmeans",
        km,
        "--output",
        str(out),
        *extra,
    ]
    if split:
        argv += ["--split", split]
    return tokenize.run(argv)


def _table(out, name):
    files = sorted((out / name).glob("*.parquet"))
    return [row for f in files for row in pq.read_table(f).to_pylist()]


def _digest(out) -> dict:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.rglob("*.parquet"))
    }


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_each_sample_corpus(sample, km, tmp_path, corpus):
    stats = _tokenize(sample["root"], corpus, km, tmp_path / "out")
    out = tmp_path / "out"
    assert stats == json.loads((out / "stats.json").read_text())
    dup = sum(stats["duplicates"].values())
    assert stats["read"] == stats["kept"] + sum(stats["rejected"].values()) + dup
    folder, split = CORPORA[corpus]
    usable = [
        r.id
        for r in sources.read(corpus, str(sample["root"] / folder), split)
        if isinstance(r, Utterance)
    ]
    units = _table(out, "units")
    assert sorted(r["id"] for r in units) == sorted(usable) and dup == 0
    for f in (out / "units").glob("*.parquet"):
        validate(pq.read_table(f), "units")
    assert all(0 <= u < K for r in units for u in r["units"])
    assert all(r["extractor"]["k"] == K and r["extractor"]["name"] == "mfcc" for r in units)
    if corpus == "gigaspeech":
        garbage = sum(e["sentence"] is None for e in sample["expected"]["gigaspeech"])
        assert stats["rejected"] == {"garbage_tag": garbage}
    if corpus == "librispeech":
        assert all(r["text"] for r in units)


def read_int16(path: str) -> np.ndarray:
    """A 16-bit FLAC's samples as int / 32768, decoded here rather than by the code under test."""
    pcm, sr = sf.read(path, dtype="int16")
    assert sr == 16_000 and pcm.ndim == 1
    return pcm / 32768


def assert_units(row: dict, features: np.ndarray, centroids: np.ndarray) -> None:
    """``row``'s units and durations are the runs of ``features``' nearest centroids."""
    dist = ((features[:, None, :] - centroids[None].astype(np.float64)) ** 2).sum(-1)
    best, second = np.sort(dist, axis=1)[:, :2].T
    # float32 features cannot tell closer centroids apart; none are (closest: 1e-4 relative)
    assert (second - best > 1e-5 * second).all(), f"{row['id']}: near tie, no reference"
    runs = [(int(u), len(list(g))) for u, g in itertools.groupby(dist.argmin(1))]
    assert row["num_frames"] == len(features)
    assert list(zip(row["units"], row["durations"], strict=True)) == runs, row["id"]


def test_mfcc_units_equal_an_independent_recomputation(sample, km, tmp_path):
    """soundfile decode → numpy MFCC (tests/speechinstruct/test_mfcc.py) → argmin → runs."""
    _tokenize(sample["root"], "librispeech", km, tmp_path / "o")
    rows = _table(tmp_path / "o", "units")
    centroids = np.load(km)
    assert len(rows) == 32 and sum(r["num_frames"] for r in rows) > 4000
    for row in rows:
        assert_units(row, reference_mfcc(read_int16(row["source"]["path"])), centroids)


@pytest.fixture
def one_torch_thread():
    """A tiny model's ops are too small for threads to pay (8x slower on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_hubert_units_from_a_fairseq_checkpoint(sample, tmp_path, one_torch_thread):
    """The paper's path: a fairseq HuBERT checkpoint through ``tokenize --extractor hubert``
    (layer 1 of 2), against transformers' HubertModel filled from the same weights."""
    weights = fairseq_weights()
    checkpoint = tmp_path / "tiny_hubert.pt"
    save_fairseq(checkpoint, weights, tiny_cfg(), as_omegaconf=True)
    model = reference_model(weights)
    split = "dev-clean"
    paths = sorted(str(p) for p in (sample["root"] / "LibriSpeech" / split).rglob("*.flac"))
    features = {p: reference_features(model, read_int16(p).astype(np.float32), 1) for p in paths}
    # centroids: K frames drawn from the utterances' own features
    pool = np.concatenate(list(features.values()))
    centroids = pool[np.random.default_rng(0).choice(len(pool), K, replace=False)]
    np.save(tmp_path / "km.npy", centroids)
    extractor = ["--extractor", "hubert", "--checkpoint", str(checkpoint), "--layer", "1"]
    extractor += ["--split", split]
    stats = _tokenize(
        sample["root"], "librispeech", str(tmp_path / "km.npy"), tmp_path / "o", *extractor
    )
    assert stats["kept"] == len(paths) == 8
    rows = _table(tmp_path / "o", "units")
    assert {(r["extractor"]["name"], r["extractor"]["layer"]) for r in rows} == {("hubert", 1)}
    for row in rows:
        assert_units(row, features[row["source"]["path"]].astype(np.float64), centroids)
    assert len({u for r in rows for u in r["units"]}) > K // 2  # not all one unit


def test_damage_duplicates_and_identical_rerun(damaged, km, tmp_path):
    split = damaged / "LibriSpeech" / "dev-clean"
    before = len(list(split.glob("*/*/*.flac")))
    chapter = sorted(p for p in split.glob("*/*"))[0]
    trans = next(chapter.glob("*.trans.txt"))
    lines = trans.read_text().splitlines()
    ids = [line.split()[0] for line in lines]
    spk, chap, _ = ids[0].split("-")
    copy_id = f"{spk}-{chap}-9000"
    shutil.copy(chapter / f"{ids[0]}.flac", chapter / f"{copy_id}.flac")  # same audio, new id
    (chapter / f"{ids[1]}.flac").unlink()
    (chapter / f"{ids[2]}.flac").write_bytes(b"not flac" * 99)
    trans.write_text("\n".join([*lines, f"{copy_id} A COPY"]) + "\n")

    first = _tokenize(damaged, "librispeech", km, tmp_path / "a", "--split", "dev-clean")
    assert first["rejected"] == {"decode_error": 1, "missing_audio": 1}
    assert first["duplicates"] == {"audio": 1}
    assert first["read"] == before + 1 == first["kept"] + 3
    (dup,) = _table(tmp_path / "a", "duplicates")
    assert (dup["id"], dup["duplicate_of"], dup["kind"]) == (copy_id, ids[0], "audio")
    rejects = {r["id"]: (r["reason"], r["stage"]) for r in _table(tmp_path / "a", "rejects")}
    assert rejects == {ids[1]: ("missing_audio", "read"), ids[2]: ("decode_error", "decode")}

    second = _tokenize(damaged, "librispeech", km, tmp_path / "b", "--split", "dev-clean")
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert {k: v for k, v in first.items() if k != "wall_seconds"} == {
        k: v for k, v in second.items() if k != "wall_seconds"
    }


def test_shards_are_bounded_named_and_never_empty(sample, km, tmp_path):
    stats = _tokenize(sample["root"], "librilight", km, tmp_path / "o", "--max-shard-mb", "0.004")
    names = sorted(p.name for p in (tmp_path / "o" / "units").glob("*.parquet"))
    assert len(names) > 1
    n = len(names)
    assert names == [f"train-{i:05d}-of-{n:05d}.parquet" for i in range(n)]
    rows = [pq.read_metadata(tmp_path / "o" / "units" / name).num_rows for name in names]
    assert min(rows) > 0 and sum(rows) == stats["kept"]


def test_multiprocessing_mode_writes_the_same_rows(sample, km, tmp_path):
    _tokenize(sample["root"], "commonvoice", km, tmp_path / "a")
    _tokenize(
        sample["root"],
        "commonvoice",
        km,
        tmp_path / "b",
        "--direct_running_mode=multi_processing",
        "--direct_num_workers=2",
    )
    assert _table(tmp_path / "a", "units") == _table(tmp_path / "b", "units")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_dedup_by_frame_units_keeps_lowest_id():
    rows = [
        {"id": "b", "corpus": "c", "source": None, "_units_hash": "x"},
        {"id": "a", "corpus": "c", "source": None, "_units_hash": "x"},
        {"id": "c", "corpus": "c", "source": None, "_units_hash": "y"},
    ]
    with TestPipeline() as p:
        out = p | beam.Create(rows) | Deduplicate("_units_hash", "units")
        assert_that(out.kept | beam.Map(lambda r: r["id"]), equal_to(["a", "c"]), label="kept")
        assert_that(
            out[DUPLICATES] | beam.Map(lambda d: (d["id"], d["duplicate_of"], d["kind"])),
            equal_to([("b", "a", "units")]),
            label="dups",
        )


def test_stats_keys(sample, km, tmp_path):
    stats = _tokenize(sample["root"], "librispeech", km, tmp_path / "o", "--split", "dev-clean")
    assert set(stats) >= {"read", "kept", "rejected", "duplicates", "audio_seconds", "wall_seconds"}
    assert stats["audio_seconds"] > 0
    assert re.fullmatch(r"[0-9a-f]{16}", stats["extractor"]["centroids_hash"])

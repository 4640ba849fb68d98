import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from pipelines import build, publish
from speechinstruct.instructions import cross_modal
from speechinstruct.templates import CHAIN_OF_MODALITY, CROSS_MODAL, parse
from tests.conftest import CORPORA, K


def _build(made, out, *extra) -> dict:
    return build.run(
        [
            "--units",
            *made["units"],
            "--chats",
            str(made["work"] / "chats.json"),
            "--t2u",
            made["t2u"],
            "--kmeans",
            made["km"],
            "--output",
            str(out),
            *extra,
        ]
    )


def _unit_rows(made) -> dict[str, dict]:
    """Every unit row ``tokenize`` wrote for the sample corpora, by id."""
    files = sorted(f for out in made["units"] for f in (Path(out) / "units").glob("*.parquet"))
    return {r["id"]: r for f in files for r in pq.read_table(f).to_pylist()}


def test_build_publish_and_load(made, tmp_path):
    info = _build(made, tmp_path / "build")
    rejects = [
        r
        for f in (tmp_path / "build" / "rejects").glob("*.parquet")
        for r in pq.read_table(f).to_pylist()
    ]
    reasons = {r["reason"] for r in rejects}
    assert {"bad_chat", "not_english"} <= reasons
    long = sum(
        len(c["plain_text"].split("[MOSS]:")[1].split("<eoa>")[0].split()) >= 35
        for c in made["chats"][:20]
    )
    assert sum(r["reason"] == "long_response" for r in rejects) == long
    com = sum(info["counts"]["chain_of_modality"].values())
    assert com == 4 * (len(made["chats"]) - len(rejects))
    assert sorted(info["corpora"]) == sorted(CORPORA)
    assert info["prompting"] == "com"  # chain-of-modality templates unless --prompting says

    publish.run(["--input", str(tmp_path / "build"), "--output", str(tmp_path / "ds")])
    card = (tmp_path / "ds" / "README.md").read_text()
    assert "config_name: chain_of_modality" in card and f"K = {K}" in card
    for config in publish.CONFIGS:
        ds = load_dataset(str(tmp_path / "ds"), config)
        streamed = load_dataset(str(tmp_path / "ds"), config, streaming=True)
        assert set(ds) == set(streamed) and set(ds) <= {"train", "validation", "test"}
        for split, rows in ds.items():
            assert rows.features == publish.features(config)
            assert len(rows) == info["counts"][config][split] > 0
            first = next(iter(streamed[split]))
            assert first == rows[0]
            unit_cols = [
                c
                for c in rows.column_names
                if c in ("units", "speech_instruction", "speech_response")
            ]
            assert all(0 <= u < K for c in unit_cols for seq in rows[c] for u in seq)
    cross = load_dataset(str(tmp_path / "ds"), "cross_modal", split="train")
    com = load_dataset(str(tmp_path / "ds"), "chain_of_modality", split="train")
    source = _unit_rows(made)
    for row in cross:  # the units and text of the utterance's own tokenize row
        name, fields = parse(row["prompt"], row["response"], CROSS_MODAL)
        unit_row = source[row["id"]]
        assert name == row["task"] and fields["text"] == row["text"] == unit_row["text"]
        assert fields["speech"] == row["units"] == unit_row["units"]
    for row in com:
        name, fields = parse(row["prompt"], row["response"], CHAIN_OF_MODALITY)
        assert name == row["format"] and fields["text_response"] == row["text_response"]
    assert set(com["format"]) == set(CHAIN_OF_MODALITY)
    assert {row["task"] for row in cross} == {"asr", "tts"}
    evaluation = load_dataset(str(tmp_path / "ds"), "eval", split="test")
    assert len(evaluation) == 60 and len(set(evaluation["role"])) == 6


def test_same_seed_same_rows_and_tts_backend(made, tmp_path):
    a = _build(made, tmp_path / "a", "--max-chats", "6")
    b = _build(made, tmp_path / "b", "--max-chats", "6")
    for table in build.TABLES:
        files = sorted(p.name for p in (tmp_path / "a" / table).glob("*.parquet"))
        for name in files:
            assert (tmp_path / "a" / table / name).read_bytes() == (
                tmp_path / "b" / table / name
            ).read_bytes()
    assert a["counts"] == b["counts"]
    # the tts build also takes another --asr-probability: it reaches every cross-modal row
    argv = ["--max-chats", "6", "--speech-backend", "tts", "--asr-probability", "0.2"]
    tts = _build(made, tmp_path / "tts", *argv)
    assert tts["counts"]["chain_of_modality"] == a["counts"]["chain_of_modality"]
    rows = pq.read_table(next((tmp_path / "tts" / "chain_of_modality").glob("train-*"))).to_pylist()
    assert all(row["speech_response"] for row in rows)
    source = _unit_rows(made)
    cross = [
        r
        for f in (tmp_path / "tts" / "cross_modal").glob("*.parquet")
        for r in pq.read_table(f).to_pylist()
    ]
    assert all(r["task"] == cross_modal(source[r["id"]], 0, 0.2, 0.05)["task"] for r in cross)
    n, asr = len(cross), sum(r["task"] == "asr" for r in cross)
    assert abs(asr - 0.2 * n) <= 4 * math.sqrt(n * 0.2 * 0.8), (asr, n)


def test_wrong_centroids_are_refused(made, tmp_path):
    import numpy as np

    np.save(
        tmp_path / "other.npy", np.random.default_rng(0).standard_normal((K, 39)).astype("float32")
    )
    with pytest.raises(SystemExit):
        build.run(
            [
                "--units",
                *made["units"],
                "--chats",
                str(made["work"] / "chats.json"),
                "--t2u",
                made["t2u"],
                "--kmeans",
                str(tmp_path / "other.npy"),
                "--output",
                str(tmp_path / "x"),
            ]
        )

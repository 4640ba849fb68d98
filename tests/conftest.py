"""Shared fixtures: the sample corpora, made once per test session by the real generator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines import build, learn_kmeans, publish, tokenize
from pipelines.samples import LAYOUT, make_corpora
from speechinstruct.t2u import train as t2u_train
from training import init_model, train

pytest_plugins = ["tests.browser"]  # the `browser` fixture of the web tests

SAMPLE_UTTERANCES = 32
K = 16
CORPORA = LAYOUT  # corpus: (folder under the corpora root, split)


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Model copies and token stores in this session's own cache, not the user's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPEECHGPT_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict:
    """The generator's report: ``root`` plus, per corpus, what a reader should find."""
    root = tmp_path_factory.mktemp("corpora")
    info = make_corpora(root, SAMPLE_UTTERANCES, seed=0)
    return {**info, "root": root}


@pytest.fixture
def damaged(sample, tmp_path) -> Path:
    """A private copy of the sample corpora that a test may damage."""
    copy = tmp_path / "corpora"
    shutil.copytree(sample["root"], copy)
    return copy


@pytest.fixture(scope="session")
def made(sample, tmp_path_factory) -> dict:
    """Units of all four sample corpora (K=16 MFCC), a T2U model, and chats with damage."""
    work = tmp_path_factory.mktemp("made")
    root = sample["root"]
    km = str(work / "km.npy")
    learn_kmeans.run(
        [
            "--corpus",
            "librispeech",
            "--input",
            str(root / "LibriSpeech"),
            "--k",
            str(K),
            "--output",
            km,
        ]
    )
    units = []
    for corpus, (folder, split) in CORPORA.items():
        out = str(work / "units" / corpus)
        argv = ["--corpus", corpus, "--input", str(root / folder), "--kmeans", km, "--output", out]
        tokenize.run(argv + (["--split", split] if split else []))
        units.append(out)
    t2u = str(work / "t2u")
    t2u_train.run(["--units", *units, "--output", t2u, "--steps", "30"])
    chats = json.loads((root / "moss" / "en_helpfulness.json").read_text())[:20]
    french = "[Human]: Ça va bien aujourd'hui? <eoh> [MOSS]: Très bien, merci à vous, ça va <eoa>"
    chats += [
        {"plain_text": "no turns here", "prefix": ""},
        "not an object",
        {"plain_text": french},
    ]
    (work / "chats.json").write_text(json.dumps(chats))
    return {"work": work, "km": km, "units": units, "t2u": t2u, "chats": chats}


@pytest.fixture(scope="session")
def published(made) -> str:
    """A SpeechInstruct dataset folder published from the sample corpora."""
    work = made["work"]
    build.run(
        [
            "--units",
            *made["units"],
            "--chats",
            str(work / "chats.json"),
            "--t2u",
            made["t2u"],
            "--kmeans",
            made["km"],
            "--output",
            str(work / "build"),
            "--max-chats",
            "16",
        ]
    )
    publish.run(["--input", str(work / "build"), "--output", str(work / "dataset")])
    return str(work / "dataset")


@pytest.fixture(scope="session")
def baseline_vocoder(made, tmp_path_factory) -> str:
    """The fast baseline vocoder fitted on the sample units."""
    from vocoder import train as vocoder_train

    out = tmp_path_factory.mktemp("vocoder") / "baseline"
    vocoder_train.run(["--kind", "baseline", "--units", *made["units"], "--output", str(out)])
    return str(out)


@pytest.fixture(scope="session")
def stages(published, tmp_path_factory) -> dict:
    """init-model, then stages 1 → 2 → 3 for a few steps each, on the published dataset."""
    work = tmp_path_factory.mktemp("train")
    base = init_model.run(["--data", published, "--output", str(work / "base")])
    out, summaries, prev = {"base": base}, {}, base
    for stage, steps in ((1, 12), (2, 12), (3, 12)):
        out[stage] = str(work / f"stage{stage}")
        summaries[stage] = train.run(
            [
                "--stage",
                str(stage),
                "--config",
                f"tiny/stage{stage}",
                "--data",
                published,
                "--base-model",
                prev,
                "--output",
                out[stage],
                "--steps",
                str(steps),
            ]
        )
        prev = out[stage]
    out["summaries"] = summaries
    return out


@pytest.fixture(scope="session", autouse=True)
def private_datasets_cache(tmp_path_factory):
    """The datasets library's cache in this session's own folder: it knows a local dataset
    folder by its name and card, not by its rows, so the rows of a folder of the same name
    that an earlier session published or copied would be read instead (see
    tests/training/test_data.py)."""
    import datasets

    folder = tmp_path_factory.mktemp("datasets_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_DATASETS_CACHE", str(folder))  # and the demo's subprocesses
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", folder)
        yield

"""The training tests' own fixture: a tiny model that learned four answers by heart."""

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from speechinstruct.templates import render
from training import evaluate, train
from training.config import CONFIGS

QUADRUPLET = ("text_instruction", "text_response", "speech_instruction", "speech_response")


def _four_rows(published: str, folder: Path) -> list[dict]:
    """A copy of the published dataset whose cross_modal train split is 2 ASR + 2 TTS rows;
    the first ASR row asks with ``eval``'s ASR description, so ``eval`` asks it as taught."""
    shutil.copytree(published, folder)
    (path,) = (folder / "data" / "cross_modal").glob("train-*.parquet")
    table = pq.read_table(path)
    rows = sorted(table.to_pylist(), key=lambda r: (len(r["units"]), r["id"]))
    asr = [r for r in rows if r["task"] == "asr"][:2]
    fields = {"description": evaluate.ASR_DESCRIPTION, "speech": asr[0]["units"]}
    asr[0]["prompt"], asr[0]["response"] = render("asr", text=asr[0]["text"], **fields)
    asr[0]["description"] = evaluate.ASR_DESCRIPTION
    keep = asr + [r for r in rows if r["task"] == "tts"][:2]
    pq.write_table(table.from_pylist(keep, schema=table.schema), path)
    _drop_split_sizes(folder)
    return keep


def _drop_split_sizes(folder: Path) -> None:
    """A copied dataset whose rows a test changed: the card's split sizes are the original's."""
    card = folder / "README.md"
    _, header, body = card.read_text().split("---\n", 2)
    meta = yaml.safe_load(header)
    del meta["dataset_info"]
    card.write_text(f"---\n{yaml.safe_dump(meta)}---\n{body}")


def _train_stage2(work: Path, data_config: str, data: Path, base: str, steps: int = 200) -> str:
    """The tiny stage 2 on one data config of ``data`` for ``steps`` steps, from ``base``."""
    cfg = yaml.safe_load((CONFIGS / "tiny" / "stage2.yaml").read_text())
    cfg.update(data_config=data_config, steps=steps, save_steps=1000, warmup_steps=5)
    (work / "stage2.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["--stage", "2", "--config", str(work / "stage2.yaml"), "--data", str(data)]
    train.run([*argv, "--base-model", base, "--output", str(work / "model")])
    return str(work / "model")


@pytest.fixture(scope="session")
def parrot(stages, published, tmp_path_factory) -> dict:
    """Stage 2 trained for 200 steps on the 4 rows of its ``data`` (``rows``): greedy
    decoding gives their responses back (tests/training/test_learning.py checks it)."""
    work = tmp_path_factory.mktemp("parrot")
    rows = _four_rows(published, work / "four")
    model = _train_stage2(work, "cross_modal", work / "four", stages[1])
    return {"model": model, "data": str(work / "four"), "rows": rows}


@pytest.fixture(scope="session")
def spoken_parrot(stages, published, tmp_path_factory) -> dict:
    """Stage 2 trained for 200 steps on the first two eval rows as standard-prompting S2S
    rows (Appendix E: ``[ua]`` and the spoken answer), in a copy of the dataset that records
    ``prompting: standard``: asked so, it answers in units."""
    work = tmp_path_factory.mktemp("spoken_parrot")
    data = work / "spoken_two"  # a name no other dataset folder has: see test_data.py
    shutil.copytree(published, data)
    (path,) = (data / "data" / "eval").glob("test-*.parquet")
    asked = pq.read_table(path).to_pylist()[:2]
    (path,) = (data / "data" / "chain_of_modality").glob("train-*.parquet")
    table = pq.read_table(path)
    rows = []
    for row, template in zip(asked, table.to_pylist(), strict=False):
        quadruplet = {k: row[k] for k in QUADRUPLET}
        prompt, response = render("std_s2s", **quadruplet)
        rows.append(
            template | quadruplet | {"format": "s2s", "prompt": prompt, "response": response}
        )
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)
    _drop_split_sizes(data)
    info = json.loads((data / "build.json").read_text())
    (data / "build.json").write_text(json.dumps(info | {"prompting": "standard"}))
    model = _train_stage2(work, "chain_of_modality", data, stages[1])
    return {"model": model, "data": str(data), "rows": asked}

"""The training tests' own fixture: a tiny model that learned four answers by heart."""

import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from speechinstruct.templates import render
from training import evaluate, train
from training.config import CONFIGS


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
    card = folder / "README.md"  # its recorded split sizes are the original's: drop them
    _, header, body = card.read_text().split("---\n", 2)
    meta = yaml.safe_load(header)
    del meta["dataset_info"]
    card.write_text(f"---\n{yaml.safe_dump(meta)}---\n{body}")
    return keep


@pytest.fixture(scope="session")
def parrot(stages, published, tmp_path_factory) -> dict:
    """Stage 2 trained for 200 steps on the 4 rows of its ``data`` (``rows``): greedy
    decoding gives their responses back (tests/training/test_learning.py checks it)."""
    work = tmp_path_factory.mktemp("parrot")
    rows = _four_rows(published, work / "four")
    cfg = yaml.safe_load((CONFIGS / "tiny" / "stage2.yaml").read_text())
    cfg.update(data_config="cross_modal", steps=200, save_steps=1000, warmup_steps=5)
    (work / "stage2.yaml").write_text(yaml.safe_dump(cfg))
    train.run(
        [
            "--stage",
            "2",
            "--config",
            str(work / "stage2.yaml"),
            "--data",
            str(work / "four"),
            "--base-model",
            stages[1],
            "--output",
            str(work / "model"),
        ]
    )
    return {"model": str(work / "model"), "data": str(work / "four"), "rows": rows}

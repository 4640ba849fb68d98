"""A learning test: beyond "the loss falls", stage 2 must make a tiny model reproduce its
four training responses exactly, decoded greedily by the code ``eval`` uses.

A label shift, a mask off by one or a template that differs between training and
inference lets the loss fall and fails this.
"""

import shutil

import pyarrow.parquet as pq
import yaml
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechinstruct.templates import CROSS_MODAL, parse
from training import evaluate, train
from training.config import CONFIGS
from training.tokens import SpeechTokenizer


def _four_rows(published: str, folder) -> list[dict]:
    """A copy of the published dataset whose cross_modal train split is 2 ASR + 2 TTS rows."""
    shutil.copytree(published, folder)
    (path,) = (folder / "data" / "cross_modal").glob("train-*.parquet")
    table = pq.read_table(path)
    rows = sorted(table.to_pylist(), key=lambda r: (len(r["units"]), r["id"]))
    keep = [r for r in rows if r["task"] == "asr"][:2] + [r for r in rows if r["task"] == "tts"][:2]
    pq.write_table(table.from_pylist(keep, schema=table.schema), path)
    card = folder / "README.md"  # its recorded split sizes are the original's: drop them
    _, header, body = card.read_text().split("---\n", 2)
    meta = yaml.safe_load(header)
    del meta["dataset_info"]
    card.write_text(f"---\n{yaml.safe_dump(meta)}---\n{body}")
    return keep


def test_stage2_reproduces_its_training_responses(stages, published, tmp_path):
    rows = _four_rows(published, tmp_path / "four")
    cfg = yaml.safe_load((CONFIGS / "tiny" / "stage2.yaml").read_text())
    cfg.update(steps=120, save_steps=1000, warmup_steps=5)
    (tmp_path / "stage2.yaml").write_text(yaml.safe_dump(cfg))
    train.run(
        [
            "--stage",
            "2",
            "--config",
            str(tmp_path / "stage2.yaml"),
            "--data",
            str(tmp_path / "four"),
            "--base-model",
            stages[1],
            "--output",
            str(tmp_path / "model"),
        ]
    )
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "model").eval()
    st = SpeechTokenizer(AutoTokenizer.from_pretrained(tmp_path / "model"))
    for row in rows:
        name, fields = parse(row["prompt"], row["response"], CROSS_MODAL)
        assert name == row["task"]
        got = evaluate.answer(model, st, name, fields, max_new_tokens=200)
        assert got == row["response"], (name, got, row["response"])

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from training import merge_lora, train
from training.config import CONFIGS
from training.tokens import num_units


def _metrics(path) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f]


def test_each_stage_learns_and_loads(stages):
    for stage in (1, 2, 3):
        rows = _metrics(f"{stages[stage]}/metrics.jsonl")
        assert [r["step"] for r in rows] == list(range(1, 13))
        first, last = (sum(r["loss"] for r in part) / 4 for part in (rows[:4], rows[-4:]))
        assert last < first, (stage, rows)
        assert {"step", "loss", "lr", "tokens_per_s"} <= set(rows[0])
        assert os.path.getsize(f"{stages[stage]}/loss.png") > 1000
    assert stages["summaries"][1]["packing_efficiency"] >= 0.9
    tok = AutoTokenizer.from_pretrained(stages[1])
    assert num_units(tok) == 16
    for stage in (1, 2):
        model = AutoModelForCausalLM.from_pretrained(stages[stage])
        assert model.get_input_embeddings().weight.shape[0] == len(tok)
    lora = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(stages[2]), stages[3])
    trainable = [n for n, _ in lora.named_parameters() if "lora_" in n]
    assert trainable and all(any(t in n for t in ("q_proj", "k_proj", "v_proj", "o_proj"))
                             for n in trainable)  # fmt: skip


def test_merge_lora_equals_the_adapter(stages, tmp_path):
    merge_lora.run(["--lora", stages[3], "--output", str(tmp_path / "merged")])
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(stages[2]), stages[3])
    x = torch.randint(0, 1000, (2, 24))
    with torch.no_grad():
        torch.testing.assert_close(merged(x).logits, adapted.eval()(x).logits, atol=1e-4, rtol=1e-4)


def test_killed_run_resumes_exactly(stages, published, tmp_path):
    cfg = yaml.safe_load((CONFIGS / "tiny" / "stage2.yaml").read_text())
    cfg.update(save_steps=2, steps=10)
    (tmp_path / "stage2.yaml").write_text(yaml.safe_dump(cfg))
    argv = ["--stage", "2", "--config", str(tmp_path / "stage2.yaml"), "--data", published,
            "--base-model", stages[1]]  # fmt: skip
    train.run([*argv, "--output", str(tmp_path / "full")])

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "speechgpt.cli", "train", *argv, "--output", str(out)]
    # a fresh process group: not the rendezvous (MASTER_PORT…) of this test process
    launcher = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
    env = {k: v for k, v in os.environ.items() if k not in launcher}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "checkpoints" / "latest").exists():
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = (out / "checkpoints" / "latest").read_text().strip()
    resumed_at = int(latest.removeprefix("step"))
    assert 2 <= resumed_at < 10, latest  # killed mid-run, after a checkpoint
    train.run([*argv, "--output", str(out), "--resume"])

    full = _metrics(tmp_path / "full" / "metrics.jsonl")
    again = _metrics(out / "metrics.jsonl")
    assert [r["step"] for r in again] == list(range(1, 11))
    for a, b in zip(full, again, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-6, (a, b)
        assert a["lr"] == pytest.approx(b["lr"])

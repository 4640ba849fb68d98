"""Two ranks on this CPU (torchrun, gloo, DS_ACCELERATOR=cpu) against one rank.

The data-parallel contract (``training/sampler.py``) makes a 2-rank run with accumulation
A the same computation as a 1-rank run with 2A, up to float rounding; rank 0 alone writes
the outputs; a killed 2-rank run resumes to the uninterrupted losses.
"""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import yaml
from safetensors.torch import load_file

from tests.processes import child_env
from training import train
from training.config import CONFIGS

STEPS = 6


def _metrics(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def _torchrun(argv: list[str]) -> subprocess.Popen:
    """``torchrun --nproc_per_node 2 -m speechgpt.cli train …`` in its own process group."""
    env = child_env()  # not this process's group
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "speechgpt.cli",
        "train",
        *argv,
    ]
    return subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )


def _finish(proc: subprocess.Popen) -> str:
    out = proc.communicate(timeout=600)[0].decode()
    assert proc.returncode == 0, out[-3000:]
    return out


@pytest.fixture(scope="module")
def runs(stages, published, tmp_path_factory) -> dict:
    """The same stage-2 config (global batch 4, micro-batch 2) on 1 rank (accumulation 2)
    and on 2 ranks (accumulation 1)."""
    work = tmp_path_factory.mktemp("ranks")
    cfg = yaml.safe_load((CONFIGS / "tiny" / "stage2.yaml").read_text())
    cfg.update(
        micro_batch_size=2,
        batch_size=4,
        lr=1e-3,
        warmup_steps=2,
        steps=STEPS,
        save_steps=2,
        keep_checkpoints=2,
    )
    (work / "stage2.yaml").write_text(yaml.safe_dump(cfg))
    argv = [
        "--stage",
        "2",
        "--config",
        str(work / "stage2.yaml"),
        "--data",
        published,
        "--base-model",
        stages[1],
    ]
    one = train.run([*argv, "--output", str(work / "one")])
    log = _finish(_torchrun([*argv, "--output", str(work / "two")]))
    return {"work": work, "argv": argv, "one": one, "two_log": log}


def test_two_ranks_equal_one_rank_with_double_accumulation(runs):
    work = runs["work"]
    one, two = _metrics(work / "one"), _metrics(work / "two")
    assert [r["step"] for r in two] == list(range(1, STEPS + 1))  # one file, one row a step
    for a, b in zip(one, two, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (a, b)
        assert a["lr"] == pytest.approx(b["lr"])
    wa, wb = (load_file(work / run / "model.safetensors") for run in ("one", "two"))
    assert wa.keys() == wb.keys()
    worst = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    # Adam divides by sqrt(v): rounding in a near-zero gradient can move a weight by up to
    # lr a step, so the tolerance holds for this config's small lr and few steps
    assert worst < 1e-5, worst
    summary = json.loads((work / "two" / "train_summary.json").read_text())
    assert (summary["world_size"], summary["accumulation"]) == (2, 1)
    assert (runs["one"]["world_size"], runs["one"]["accumulation"]) == (1, 2)
    # rank 0 alone prints: one summary line, one token-store line
    assert runs["two_log"].count("train: stage 2 done") == 1
    assert runs["two_log"].count("train: token store") == 1


def test_checkpoints_rotate_and_hold_every_ranks_rng(runs):
    ckpt = runs["work"] / "two" / "checkpoints"
    tags = sorted(p.name for p in ckpt.iterdir() if p.is_dir())
    assert tags == ["step4", "step6"]  # keep_checkpoints: 2 of step2, step4, step6
    assert (ckpt / "latest").read_text().strip() == "step6"
    assert {p.name for p in (ckpt / "step6").glob("rng_rank*.pt")} == {
        "rng_rank0.pt",
        "rng_rank1.pt",
    }


def test_killed_two_rank_run_resumes_exactly(runs):
    work, argv = runs["work"], runs["argv"]
    out = work / "killed"
    proc = _torchrun([*argv, "--output", str(out)])
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "checkpoints" / "latest").exists():
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
    # torchrun starts each worker in a session of its own: kill the whole tree, as a crash would
    tree = [proc.pid, *(c.pid for c in psutil.Process(proc.pid).children(recursive=True))]
    for pid in tree:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    resumed_at = int((out / "checkpoints" / "latest").read_text().strip().removeprefix("step"))
    assert 2 <= resumed_at < STEPS  # killed mid-run, after a checkpoint
    log = _finish(_torchrun([*argv, "--output", str(out), "--resume"]))
    assert f"resumed at step {resumed_at}" in log
    full, again = _metrics(work / "two"), _metrics(out)
    assert [r["step"] for r in again] == list(range(1, STEPS + 1))
    for a, b in zip(full, again, strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-6, (a, b)
        assert a["lr"] == pytest.approx(b["lr"])


def test_zero3_two_ranks_match_zero2(runs):
    """The ZeRO-3 presets' path: weights partitioned while they load (zero.Init through
    transformers), gathered to rank 0 to save; the same losses as ZeRO-2."""
    work = runs["work"]
    cfg = yaml.safe_load((work / "stage2.yaml").read_text())
    cfg.update(zero_stage=3)
    (work / "zero3.yaml").write_text(yaml.safe_dump(cfg))
    argv = [*runs["argv"], "--config", str(work / "zero3.yaml"), "--output", str(work / "z3")]
    _finish(_torchrun(argv))
    for a, b in zip(_metrics(work / "two"), _metrics(work / "z3"), strict=True):
        assert abs(a["loss"] - b["loss"]) < 1e-5, (a, b)
    weights = load_file(work / "z3" / "model.safetensors")
    assert weights.keys() == load_file(work / "two" / "model.safetensors").keys()
    assert json.loads((work / "z3" / "train_summary.json").read_text())["zero_stage"] == 3

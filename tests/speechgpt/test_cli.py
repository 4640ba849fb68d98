import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from schemas import SAMPLE_RATE
from speechgpt.cli import JOBS, main
from tests.processes import child_env
from vocoder import HOP


def test_help_lists_jobs(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(job in out for job in JOBS)


def test_unknown_job(capsys):
    assert main(["nope"]) == 2
    assert "unknown job 'nope'" in capsys.readouterr().err


def test_demo_runs_the_chain_and_reuses_steps(tmp_path):
    """The real console entry point, as `make demo` runs it (smaller corpora)."""
    cmd = [
        sys.executable,
        "-m",
        "speechgpt.cli",
        "demo",
        "--out",
        str(tmp_path),
        "--utterances",
        "8",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, env=child_env())
    assert run.returncode == 0, run.stderr[-3000:]
    first = run.stdout
    for corpus in ("librispeech", "librilight", "commonvoice", "gigaspeech"):
        line = next(x for x in first.splitlines() if x.startswith(f"[tokenize {corpus}] read"))
        read, kept = (int(x) for x in re.findall(r"(?:read|kept) (\d+)", line))
        assert read >= kept > 0
        assert (tmp_path / "units" / corpus / "stats.json").exists()
    assert "'garbage_tag':" in first  # the sample GigaSpeech has tagged segments
    assert (tmp_path / "speechinstruct" / "README.md").exists()
    assert "[train-t2u] held-out unit error rate" in first
    for stage in (1, 2, 3):
        assert f"[train stage {stage}] loss" in first
    assert (tmp_path / "models" / "stage3" / "adapter_config.json").exists()
    answer = _spoken_answer(first, tmp_path)
    second = subprocess.run(cmd, capture_output=True, text=True, check=True, env=child_env())
    second = second.stdout
    assert "[corpus] reusing" in second and "[tokenize gigaspeech] reusing" in second
    assert second.splitlines()[-2:] == answer  # the reused answer, said again


def _spoken_answer(out: str, demo: Path) -> list[str]:
    """The demo's last two lines, ``answer text:`` and ``answer wav:``, checked against
    talk's record and the wav; returns them."""
    *_, text, wav = out.splitlines()
    said = json.loads((demo / "talk" / "answer.json").read_text())
    assert text == f"answer text: {said['text']}"
    assert wav == f"answer wav: {demo / 'talk' / 'answer.wav'}" == f"answer wav: {said['wav']}"
    audio, rate = sf.read(demo / "talk" / "answer.wav", dtype="float32")
    assert rate == SAMPLE_RATE and audio.ndim == 1 and np.abs(audio).max() > 0
    # talk's own line: "answer speech: N units, S s (…)"; each unit lasts the vocoder's
    # mean run length of it (at least one 320-sample frame)
    units, seconds = re.search(r"^answer speech: (\d+) units, ([\d.]+) s", out, re.M).groups()
    assert int(units) == said["units"] > 0
    assert float(seconds) == round(len(audio) / SAMPLE_RATE, 1)
    frames = np.maximum(1, np.rint(np.load(demo / "vocoder" / "unit_durations.npy")))
    assert len(audio) % HOP == 0
    assert int(units) * frames.min() <= len(audio) // HOP <= int(units) * frames.max()
    return [text, wav]

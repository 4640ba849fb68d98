import re
import subprocess
import sys

from speechgpt.cli import JOBS, main
from tests.processes import child_env


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
    second = subprocess.run(cmd, capture_output=True, text=True, check=True, env=child_env())
    second = second.stdout
    assert "[corpus] reusing" in second and "[tokenize gigaspeech] reusing" in second

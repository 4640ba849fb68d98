"""Pipelines on PortableRunner with an EXTERNAL pool of two SDK worker processes, as on Flink."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.steps.dedup import DUPLICATES, KeepLowestId
from tests.portable import portable_runner

WORKERS = 2


@pytest.fixture(scope="module")
def runner_args():
    with portable_runner(workers=WORKERS) as args:
        yield args


def run(args: list[str], build) -> beam.runners.runner.PipelineResult:
    p = beam.Pipeline(options=PipelineOptions(args))
    build(p)
    result = p.run()
    result.wait_until_finish()
    return result


class RecordFn(beam.DoFn):
    """Writes one JSON file per element: its square, the worker's pid, when the work was done."""

    def __init__(self, folder: str, seconds: float):
        self.folder, self.seconds = folder, seconds
        self.squares = beam.metrics.Metrics.counter("test", "squares")

    def process(self, x: int):
        start = time.time()
        time.sleep(self.seconds)
        record = {"x": x, "square": x * x, "pid": os.getpid(), "start": start, "end": time.time()}
        Path(self.folder, f"{x}.json").write_text(json.dumps(record))
        self.squares.inc()
        yield x


def test_two_worker_processes_share_the_work_at_once(runner_args, tmp_path):
    n = 8
    result = run(
        runner_args,
        lambda p: p | beam.Create(range(n)) | beam.ParDo(RecordFn(str(tmp_path), seconds=0.3)),
    )
    assert result.state == beam.runners.runner.PipelineState.DONE
    records = [json.loads(f.read_text()) for f in tmp_path.glob("*.json")]
    assert sorted((r["x"], r["square"]) for r in records) == [(x, x * x) for x in range(n)]
    pids = {r["pid"] for r in records}
    assert len(pids) == WORKERS and os.getpid() not in pids
    # In parallel: the spans of work of the two workers overlap in time.
    spans = [
        (
            min(r["start"] for r in records if r["pid"] == pid),
            max(r["end"] for r in records if r["pid"] == pid),
        )
        for pid in pids
    ]
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    # User metrics come back from the job service, as committed values (attempted is None).
    (counter,) = result.metrics().query(MetricsFilter().with_name("squares"))["counters"]
    assert counter.committed == n


class CreateFileFn(beam.DoFn):
    def __init__(self, folder: str):
        self.folder = folder

    def process(self, x: int):
        path = FileSystems.join(self.folder, "nested", f"{x}.txt")
        with FileSystems.create(path) as f:
            f.write(f"{x} from {os.getpid()}\n".encode())
        yield path


def test_filesystems_create_in_a_worker_writes_local_files(runner_args, tmp_path):
    run(runner_args, lambda p: p | beam.Create([1, 2, 3]) | beam.ParDo(CreateFileFn(str(tmp_path))))
    files = sorted((tmp_path / "nested").iterdir())
    assert [f.name for f in files] == ["1.txt", "2.txt", "3.txt"]
    assert [f.read_text().split()[:2] for f in files] == [
        ["1", "from"],
        ["2", "from"],
        ["3", "from"],
    ]
    assert str(os.getpid()) not in {f.read_text().split()[2] for f in files}


class SaveFn(beam.DoFn):
    def __init__(self, path: str):
        self.path = path

    def process(self, rows):
        Path(self.path).write_text(json.dumps(sorted(rows, key=lambda r: r["id"])))
        yield len(rows)


def test_installed_dofn_and_lambdas_run_in_the_workers(runner_args, tmp_path):
    """A DoFn of the installed package is pickled by reference and imported by the workers."""
    rows = [{"id": i, "text": "ab"[i % 2], "corpus": "c", "source": "s"} for i in range(6)]

    def build(p):
        out = (
            p
            | beam.Create(rows)
            | beam.Map(lambda r: (r["text"], r))
            | beam.GroupByKey()
            | beam.ParDo(KeepLowestId("text")).with_outputs(DUPLICATES, main="kept")
        )
        out.kept | "k" >> beam.combiners.ToList() | "sk" >> beam.ParDo(SaveFn(str(tmp_path / "k")))
        out[DUPLICATES] | beam.combiners.ToList() | beam.ParDo(SaveFn(str(tmp_path / "d")))

    result = run(runner_args, build)
    assert [r["id"] for r in json.loads((tmp_path / "k").read_text())] == [0, 1]
    duplicates = json.loads((tmp_path / "d").read_text())
    assert [(d["id"], d["duplicate_of"]) for d in duplicates] == [(2, 0), (3, 1), (4, 0), (5, 1)]
    (counter,) = result.metrics().query(MetricsFilter().with_name("duplicates_text"))["counters"]
    assert counter.committed == 4


def shout(x: int) -> int:
    print("x" * 100_000)  # more than a pipe holds
    return x


def test_a_dofn_that_prints_a_lot_does_not_block_its_worker(runner_args):
    p = beam.Pipeline(options=PipelineOptions(runner_args))
    p | beam.Create([1, 2, 3]) | beam.Map(shout)
    result = p.run()
    assert result.wait_until_finish(duration=60_000) == beam.runners.runner.PipelineState.DONE


def fail(x):
    raise ValueError(f"no good: {x}")


def test_a_failing_dofn_fails_wait_until_finish(runner_args):
    with pytest.raises(RuntimeError, match="failed in state FAILED") as error:
        run(runner_args, lambda p: p | beam.Create([1, 2]) | beam.Map(fail))
    assert "ValueError: no good" in str(error.value)

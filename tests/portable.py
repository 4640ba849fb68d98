"""Beam's PortableRunner against a local job service and an EXTERNAL pool of SDK worker processes.

The layout of a Flink cluster running Python, on one machine and without Java: a job service
(Beam's ``local_job_service_main``) runs the job and asks a worker pool (Beam's
``worker_pool_main``, what runs beside a Flink task manager) for SDK workers, each one a
``python`` process of its own, started from PATH.

    with portable_runner(workers=2) as args:
        with beam.Pipeline(options=PipelineOptions(args)) as p:
            ...

Both services are Beam's own ``main``s, started as ``python -m tests.portable jobs|workers`` to
mend two things first:

- jobs: stock ``local_job_service_main`` runs every job on ONE SDK worker. Its job calls
  ``FnApiRunner.run_via_runner_api`` directly, which reads neither ``--direct_num_workers`` (only
  ``FnApiRunner.run_pipeline`` does) nor ``--sdk_worker_parallelism``. Here the job's runner gets
  ``--sdk_worker_parallelism`` workers, as on a Flink task manager: each stage's input is split
  into that many parts, run at the same time, one on each worker.
- workers: stock ``worker_pool_main`` starts each SDK worker with ``stdout=PIPE`` and never reads
  it, so a DoFn that prints more than a pipe holds (64 KiB) blocks its worker, and the job hangs
  for ever. Here workers print to the pool's log instead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """The pool starts each SDK worker as ``python`` from PATH: this interpreter's must come first.

    The repo root goes on PYTHONPATH so that workers can import DoFns that are defined in test
    modules (``tests.…``), which the pickler sends by reference, as it does those of ``pipelines``.
    """
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH")] if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _tail(path: Path, lines: int = 40) -> str:
    text = path.read_text(errors="replace").splitlines()
    return "\n".join(text[-lines:])


def _wait_for_port(port: int, proc: subprocess.Popen, log: Path, name: str, deadline: float):
    while True:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with {proc.returncode} before listening on port {port}:\n"
                + _tail(log)
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{name} not listening on port {port} after start-up timeout:\n" + _tail(log)
                ) from None
            time.sleep(0.05)


def _stop(proc: subprocess.Popen, sig: int, grace: float = 15.0) -> None:
    """``sig`` to the process, then SIGKILL to its whole process group if it or any child is left.

    The worker pool stops its SDK workers (and waits for them) only on SIGINT: on SIGTERM it dies
    at once and leaves them behind.
    """
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    # Each service was started in a session of its own: its pgid is its pid.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def portable_runner(workers: int = 2, startup_timeout: float = 60.0) -> Iterator[list[str]]:
    """Start a job service and a worker pool; yield the Beam args that run a pipeline on them.

    The pipeline then runs on ``workers`` SDK worker processes (``python`` from this venv),
    none of them this process. On exit both services stop and so do their workers.
    """
    job_port, pool_port = free_port(), free_port()
    while pool_port == job_port:
        pool_port = free_port()
    # (name, port, command, stop signal): the pool stops its SDK workers only on SIGINT.
    services = [
        ("job_service", job_port, ["jobs", f"--port={job_port}"], signal.SIGTERM),
        ("worker_pool", pool_port, ["workers", f"--service_port={pool_port}"], signal.SIGINT),
    ]
    env = _env()
    with tempfile.TemporaryDirectory(prefix="beam-portable-") as logs:
        started: list[tuple[subprocess.Popen, int]] = []
        try:
            for name, _, argv, stop in services:
                with open(Path(logs, f"{name}.log"), "wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "tests.portable", *argv],
                        cwd=ROOT,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                started.append((proc, stop))
            deadline = time.monotonic() + startup_timeout
            for (proc, _), (name, port, _, _) in zip(started, services, strict=True):
                _wait_for_port(port, proc, Path(logs, f"{name}.log"), name, deadline)
            yield [
                "--runner=PortableRunner",
                f"--job_endpoint=localhost:{job_port}",
                "--environment_type=EXTERNAL",
                f"--environment_config=localhost:{pool_port}",
                f"--sdk_worker_parallelism={workers}",
            ]
        finally:
            for proc, stop in reversed(started):  # the pool first, then the job service
                _stop(proc, stop)


def serve_jobs(argv: list[str]) -> None:
    """Beam's ``local_job_service_main``, whose jobs run on ``--sdk_worker_parallelism`` workers."""
    import logging

    from apache_beam.options.pipeline_options import PortableOptions
    from apache_beam.portability.api import beam_job_api_pb2
    from apache_beam.runners.portability import local_job_service, local_job_service_main
    from apache_beam.runners.portability.fn_api_runner import fn_runner

    def invoke_runner(job):  # local_job_service.BeamJob._invoke_runner, plus the worker count
        job.set_state(beam_job_api_pb2.JobState.RUNNING)
        options = job.pipeline_options()
        runner = fn_runner.FnApiRunner(provision_info=job._provision_info)
        parallelism = int(options.view_as(PortableOptions).sdk_worker_parallelism or 0)
        runner._num_workers = parallelism if parallelism > 0 else os.cpu_count() or 1
        return runner.run_via_runner_api(job._pipeline_proto, options)

    assert hasattr(local_job_service.BeamJob, "_invoke_runner"), "Beam changed: see serve_jobs"
    assert hasattr(fn_runner.FnApiRunner(), "_num_workers"), "Beam changed: see serve_jobs"
    local_job_service.BeamJob._invoke_runner = invoke_runner
    # What local_job_service_main does when run as __main__.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    logging.basicConfig(level=logging.INFO)
    local_job_service_main.run(argv)


class _WorkerPopen(subprocess.Popen):
    """``subprocess.Popen`` that lets a worker's stdout through instead of into an unread pipe."""

    def __init__(self, args, **kwargs):
        if kwargs.get("stdout") == subprocess.PIPE:
            kwargs["stdout"] = None
        super().__init__(args, **kwargs)


def serve_workers(argv: list[str]) -> None:
    """Beam's ``worker_pool_main``, whose SDK workers print to its own stdout."""
    from apache_beam.runners.worker import worker_pool_main

    assert worker_pool_main.subprocess is subprocess, "Beam changed: see serve_workers"
    subprocess.Popen = _WorkerPopen  # this process only starts SDK workers
    worker_pool_main.main(argv)  # stops (and waits for) its workers on SIGINT, not on SIGTERM


if __name__ == "__main__":
    {"jobs": serve_jobs, "workers": serve_workers}[sys.argv[1]](sys.argv[2:])

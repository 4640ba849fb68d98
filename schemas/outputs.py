"""The completion marker of a job's output folder: written last, so a folder without it is
unfinished (a crashed or running job) and no consumer may read it."""

from __future__ import annotations

from pathlib import Path

MARKER = "_SUCCESS.json"


def require_finished(folder: str | Path, what: str) -> None:
    """Raise unless the local ``folder`` holds its marker."""
    if not Path(folder, MARKER).is_file():
        raise FileNotFoundError(
            f"{what} {folder} has no {MARKER}: it is not a finished output (a crashed or "
            f"running job, or not a {what} folder); rerun the job that writes it"
        )

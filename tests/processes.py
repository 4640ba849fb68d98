"""Environment for subprocesses of the test session."""

import os

# set in this process by the in-process training runs (engine.single_process_defaults);
# a child that inherits them joins (or collides with) this process's rendezvous
LAUNCHER = ("LOCAL_RANK", "RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")


def child_env() -> dict[str, str]:
    """This process's environment without the launcher's rank variables."""
    return {k: v for k, v in os.environ.items() if k not in LAUNCHER}

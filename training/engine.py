"""DeepSpeed for real: process group, the engine and its config, rank-aware checkpoints.

``deepspeed``/``torchrun`` set RANK, WORLD_SIZE, … for multi-GPU and multi-node runs; a
plain ``speechgpt train`` on a CPU gets the single-process values and the gloo backend.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist


def single_process_defaults() -> None:
    """What the launchers would set, for one process; DS_ACCELERATOR=cpu without CUDA."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            "LOCAL_RANK": "0",
            "RANK": "0",
            "WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        for key, value in env.items():
            os.environ.setdefault(key, value)


@dataclass(frozen=True)
class Ranks:
    rank: int
    local_rank: int
    world: int

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def device(self) -> torch.device:
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank)
        return torch.device("cpu")

    def say(self, *args) -> None:
        """Print from rank 0 only."""
        if self.main:
            print(*args, flush=True)

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def share(self, value):
        """Rank 0's ``value`` on every rank."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def sum(self, values: list[float]) -> list[float]:
        return self._reduce(values, dist.ReduceOp.SUM)

    def max(self, values: list[float]) -> list[float]:
        return self._reduce(values, dist.ReduceOp.MAX)

    def _reduce(self, values: list[float], op) -> list[float]:
        if self.world == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64)
        if dist.get_backend() == "nccl":
            t = t.to(self.device)
        dist.all_reduce(t, op=op)
        return t.tolist()


def init_distributed() -> Ranks:
    """Join the process group (gloo on a CPU, nccl on GPUs) and say who we are."""
    single_process_defaults()
    import deepspeed

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    ranks = Ranks(dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size())
    if torch.cuda.is_available():
        torch.cuda.set_device(ranks.local_rank)
    return ranks


def ds_config(cfg, world_size: int) -> dict:
    """The DeepSpeed config of a stage: ZeRO stage, accumulation, clipping, mixed precision."""
    zero = {
        "stage": cfg.zero_stage,
        "overlap_comm": torch.cuda.is_available(),
        "contiguous_gradients": True,
    }
    if cfg.zero_stage == 3:
        zero["stage3_gather_16bit_weights_on_model_save"] = True
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.accumulation(world_size),
        "gradient_clipping": cfg.gradient_clipping,
        "zero_optimization": zero,
        "bf16": {"enabled": cfg.dtype == "bf16"},
        "fp16": {"enabled": cfg.dtype == "fp16", "loss_scale": 0, "initial_scale_power": 16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def initialize(model, optimizer, scheduler, config: dict):
    import deepspeed

    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config
    )
    return engine


def full_state_dict(engine) -> dict | None:
    """The whole model's weights for ``save_pretrained``; under ZeRO-3 gathered on rank 0
    (every rank must call this), else the module's own (``None``: let it save itself)."""
    if engine.zero_optimization_stage() == 3:
        return engine._zero3_consolidated_16bit_state_dict()
    return None


# Checkpoints: DeepSpeed's own files (all ranks write their shards), plus one RNG file a rank.


def _rng_path(folder: Path, rank: int) -> Path:
    return folder / f"rng_rank{rank}.pt"


def save_rng(folder: Path, rank: int) -> None:
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(state, _rng_path(folder, rank))


def restore_rng(folder: Path, rank: int) -> bool:
    """Restore this rank's RNG state; False if the checkpoint has none for this rank."""
    path = _rng_path(folder, rank)
    if not path.exists():
        return False
    state = torch.load(path, weights_only=False)
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    return True


TAG = re.compile(r"step(\d+)")


def latest_tag(folder: Path) -> str | None:
    path = folder / "latest"
    return path.read_text().strip() if path.exists() else None


def rotate(folder: Path, keep: int, step: int) -> list[str]:
    """Delete all but the last ``keep`` ``stepN`` checkpoints up to ``step`` (so the one
    just written stays); returns the deleted tags."""
    tags = sorted(
        (int(m.group(1)), p.name)
        for p in folder.iterdir()
        if p.is_dir() and (m := TAG.fullmatch(p.name)) and int(m.group(1)) <= step
    )
    old = [name for _, name in tags[:-keep]]
    for name in old:
        shutil.rmtree(folder / name, ignore_errors=True)
    return old

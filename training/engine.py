"""DeepSpeed for real: the engine, its config, and single-process defaults for a CPU.

``deepspeed``/``torchrun`` set RANK, WORLD_SIZE, … for multi-GPU and multi-node runs; a
plain ``speechgpt train`` on a CPU gets the single-process values and the gloo backend.
"""

from __future__ import annotations

import os
import socket

import torch


def single_process_defaults() -> None:
    """What the launchers would set, for one process; DS_ACCELERATOR=cpu without CUDA."""
    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    if "RANK" not in os.environ:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {"LOCAL_RANK": "0", "RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port)}  # fmt: skip
        for key, value in env.items():
            os.environ.setdefault(key, value)


def ds_config(cfg, world_size: int) -> dict:
    """The DeepSpeed config of a stage: ZeRO stage, accumulation, clipping, bf16 on GPU."""
    bf16 = cfg.bf16 and torch.cuda.is_available()
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.accumulation(world_size),
        "gradient_clipping": 1.0,
        "zero_optimization": {
            "stage": cfg.zero_stage,
            "overlap_comm": bf16,
            "contiguous_gradients": True,
        },
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def initialize(model, optimizer, scheduler, cfg):
    single_process_defaults()
    import deepspeed

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    deepspeed.init_distributed(dist_backend=backend)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    config = ds_config(cfg, world)
    engine, _, _, _ = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=config
    )
    return engine

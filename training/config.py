"""Stage configs: YAML presets with the paper's numbers (``configs/paper``) or tiny CPU ones."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from speechinstruct import presets
from training.model import DTYPES

CONFIGS = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class StageConfig:
    stage: int
    data_config: str | dict[str, float]  # a config, or {config: weight} to mix (training/store.py)
    batch_size: int  # global, in sequences
    micro_batch_size: int
    lr: float
    warmup_steps: int
    weight_decay: float
    max_length: int
    steps: int
    zero_stage: int
    save_steps: int
    dtype: str = "fp32"  # of the weights in training; DeepSpeed keeps fp32 master weights
    gradient_checkpointing: bool = False
    keep_checkpoints: int = 2  # the last N DeepSpeed checkpoints are kept
    log_steps: int = 1
    lora_r: int = 0
    lora_alpha: int = 0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ()
    seed: int = 0
    adam_betas: tuple[float, float] = (0.9, 0.95)
    gradient_clipping: float = 1.0  # max gradient norm
    bucket: int = 50  # micro-batches per length-sorted mega-batch (training/sampler.py)
    # add the unit and control tokens to the base (stage 1 always does): a stage 2 from a
    # plain LLM, such as §6.3's text-only SFT baseline (configs/*/text_sft.yaml)
    expand_vocabulary: bool = False

    @property
    def expands_vocabulary(self) -> bool:
        return self.stage == 1 or self.expand_vocabulary

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype {self.dtype!r}: choose from {', '.join(DTYPES)}")
        if self.keep_checkpoints < 1:
            raise ValueError("keep_checkpoints must be at least 1")

    def accumulation(self, world_size: int) -> int:
        per_step = self.micro_batch_size * world_size
        if self.batch_size % per_step:
            raise ValueError(
                f"batch_size {self.batch_size} is not a multiple of "
                f"micro_batch_size × world size = {per_step}"
            )
        return self.batch_size // per_step


def load(path: str | Path, **overrides) -> StageConfig:
    """A YAML preset (a path, or ``tiny/stage1``-style name), with CLI overrides applied."""
    return presets.load(StageConfig, path, CONFIGS, **overrides)

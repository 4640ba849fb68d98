"""Loading a causal LM and its tokenizer from a local folder: dtype, device, low CPU memory.

transformers builds the model on the meta device and fills it from the checkpoint
shard by shard, so a 13B model never sits in fp32 in CPU memory; ``device`` puts the
weights straight onto the rank's GPU. Under ZeRO-3 (``zero3_config``) the weights are
partitioned across ranks while they load (DeepSpeed's ``zero.Init``).
"""

from __future__ import annotations

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_tokenizer(path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path)


def load_model(
    path: str,
    dtype: str = "fp32",
    device: torch.device | str = "cpu",
    zero3_config: dict | None = None,
):
    """A causal LM in ``dtype`` on ``device`` (or partitioned, under ZeRO-3)."""
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": DTYPES[dtype]}
    keep_alive = None
    if zero3_config is not None:
        from transformers.integrations import HfDeepSpeedConfig

        keep_alive = HfDeepSpeedConfig(zero3_config)  # from_pretrained reads it
    elif torch.device(device).type != "cpu":
        kwargs["device_map"] = {"": torch.device(device)}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    model._speechgpt_ds_config = keep_alive  # transformers holds it weakly
    return model

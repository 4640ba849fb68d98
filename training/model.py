"""Loading a causal LM and its tokenizer from a local folder: dtype, device, low CPU memory.

transformers builds the model on the meta device and fills it from the checkpoint
shard by shard, so a 13B model never sits in fp32 in CPU memory; ``device`` puts the
weights straight onto the rank's GPU. Under ZeRO-3 (``zero3_config``) the weights are
partitioned across ranks while they load (DeepSpeed's ``zero.Init``).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def load_tokenizer(path: str):
    """``AutoTokenizer``, with an error that says what to install when a tokenizer's
    library is missing (LLaMA's sentencepiece ``tokenizer.model`` needs ``sentencepiece``)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path)
    except (ImportError, ValueError) as e:
        if not any(name in str(e).lower() for name in ("sentencepiece", "tiktoken", "protobuf")):
            raise
        raise RuntimeError(
            f"cannot load the tokenizer of {path}: {e}\nA LLaMA tokenizer (tokenizer.model) "
            "needs `pip install sentencepiece protobuf`; the project's setup installs both."
        ) from e


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


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")
STYLES = ("paper", "released")  # prompt styles: our templates, or the released SpeechGPT's
STYLE_FILE = "speechgpt.json"  # what a model we trained records about itself


SP_MODEL = "tokenizer.model"


def save_tokenizer(tokenizer, folder: str | Path) -> None:
    """``save_pretrained``, plus the sentencepiece model it came from (transformers writes
    only ``tokenizer.json``; the released prompt style encodes with sentencepiece itself)."""
    import shutil

    tokenizer.save_pretrained(folder)
    source = getattr(tokenizer, "vocab_file", None) or Path(tokenizer.name_or_path, SP_MODEL)
    target = Path(folder, SP_MODEL)
    if Path(source).is_file() and not target.exists():
        shutil.copy(source, target)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def add_device_arguments(parser) -> None:
    """``--device`` and ``--dtype`` for the commands that run a model."""
    parser.add_argument(
        "--device", help="where the model runs: cuda (default when there is one), cuda:N or cpu"
    )
    parser.add_argument(
        "--dtype",
        choices=sorted(DTYPES),
        help="the weights' dtype (default: bf16 on a GPU, fp32 on a CPU)",
    )


def load_for_inference(
    path: str, lora: str | None = None, device: str | None = None, dtype: str | None = None
):
    """A model (plus a LoRA adapter: ours, or one saved by peft 0.3) ready to generate, and
    its tokenizer (the adapter's, when the adapter folder has one)."""
    device = device or default_device()
    dtype = dtype or ("bf16" if torch.device(device).type == "cuda" else "fp32")
    model = load_model(path, dtype, device)
    if lora:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, lora)
    has_own = lora and any(Path(lora, f).exists() for f in TOKENIZER_FILES)
    return model.eval(), load_tokenizer(lora if has_own else path)


def prompt_style(folder: str, tokenizer) -> str:
    """The style a model folder records (``speechgpt.json``, written by ``train``); else
    ``released`` when ``<eoa>`` is not a whole token (the released tokenizer), else ``paper``."""
    recorded = Path(folder, STYLE_FILE)
    if recorded.is_file():
        return json.loads(recorded.read_text())["prompt_style"]
    return "paper" if "<eoa>" in tokenizer.get_vocab() else "released"

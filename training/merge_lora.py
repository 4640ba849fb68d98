"""``speechgpt merge-lora``: fold a stage-3 LoRA adapter into its base: one plain HF model."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from training.model import STYLE_FILE, add_device_arguments, load_for_inference, save_tokenizer


def run(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="speechgpt merge-lora", description=__doc__)
    parser.add_argument("--lora", required=True, help="a stage-3 output folder (the adapter)")
    parser.add_argument("--base", help="its base model (default: the adapter's recorded base)")
    parser.add_argument("--output", required=True)
    add_device_arguments(parser)
    args = parser.parse_args(argv)
    base = (
        args.base
        or json.loads(Path(args.lora, "adapter_config.json").read_text())["base_model_name_or_path"]
    )
    model, tokenizer = load_for_inference(base, args.lora, args.device, args.dtype)
    model.merge_and_unload().save_pretrained(args.output)
    save_tokenizer(tokenizer, args.output)
    style = Path(args.lora, STYLE_FILE)
    if style.is_file():
        shutil.copy(style, Path(args.output, STYLE_FILE))
    print(f"merge-lora: {args.lora} + {base} -> {args.output}")
    return args.output

"""``speechgpt merge-lora``: fold a stage-3 LoRA adapter into its base: one plain HF model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def run(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="speechgpt merge-lora", description=__doc__)
    parser.add_argument("--lora", required=True, help="a stage-3 output folder (the adapter)")
    parser.add_argument("--base", help="its base model (default: the adapter's recorded base)")
    parser.add_argument("--output", required=True)
    args = parser.parse_args(argv)
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = (
        args.base
        or json.loads(Path(args.lora, "adapter_config.json").read_text())["base_model_name_or_path"]
    )
    model = AutoModelForCausalLM.from_pretrained(base)
    merged = PeftModel.from_pretrained(model, args.lora).merge_and_unload()
    merged.save_pretrained(args.output)
    AutoTokenizer.from_pretrained(args.lora).save_pretrained(args.output)
    print(f"merge-lora: {args.lora} + {base} -> {args.output}")
    return args.output

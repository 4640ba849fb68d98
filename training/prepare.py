"""``speechgpt prepare --stage N …``: build a stage's token store ahead of training.

``train`` builds the store itself on rank 0 while the other ranks wait; on a large
dataset, run this once beforehand (on a CPU machine, into the ``--cache-dir`` the
training nodes share) so the GPUs do not idle. It takes the arguments of ``train`` that
decide the store and prints the store's folder and counts.
"""

from __future__ import annotations

import argparse
import json

from training import store
from training.tokens import SpeechTokenizer
from training.train import add_arguments, load_config, load_rows, recipe_of, stage_tokenizer


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt prepare", description=__doc__)
    add_arguments(parser)
    args = parser.parse_args(argv)
    cfg = load_config(parser, args)
    st = SpeechTokenizer(stage_tokenizer(cfg, args.base_model, args.data, args.num_units))
    recipe = recipe_of(cfg, args.data, args.prompt_style)
    rows = load_rows(args.data, recipe)
    folder = store.prepare(rows, st, recipe, args.cache_dir)
    meta = store.TokenStore(folder).meta
    print(f"prepare: {folder}\nprepare: {json.dumps(meta)}")
    return {"folder": str(folder), **meta}

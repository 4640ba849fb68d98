"""``speechgpt train-t2u``: train T2U on ``units`` rows that have text; report unit error rate.

Held-out rows (a stable 10% by id hash) give the unit error rate (edit distance /
reference length) of the trained model and of the untrained one, written to
``DIR/t2u_metrics.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import time
from pathlib import Path

import jiwer
import torch

from speechinstruct import storage
from speechinstruct.t2u.model import (
    EOS,
    T2U,
    T2UPreset,
    build_model,
    build_tokenizer,
    load_preset,
    normalize_text,
)


def read_pairs(unit_dirs: list[str]) -> tuple[list[tuple[str, str, list[int]]], int]:
    """``(id, text, units)`` of every row with text under ``OUT/units`` (paths or URIs of
    finished ``tokenize`` outputs), and K."""
    pairs, ks = [], set()
    for out in unit_dirs:
        storage.require_complete(out, "tokenize output")
        files = storage.match(storage.join(out, "units", "*.parquet"))
        if not files:
            raise FileNotFoundError(f"no units/*.parquet under {out} (a `tokenize` output?)")
        for f in files:
            columns = ["id", "text", "units", "extractor"]
            for row in storage.read_parquet(f, columns).to_pylist():
                ks.add(row["extractor"]["k"])
                if row["text"] and normalize_text(row["text"]):
                    pairs.append((row["id"], row["text"], row["units"]))
    if len(ks) != 1:
        raise ValueError(f"unit shards disagree on K: {sorted(ks)}; use one extractor")
    return sorted(pairs), ks.pop()


def held_out(id_: str, share: float = 0.1) -> bool:
    return int(hashlib.sha256(id_.encode()).hexdigest()[:8], 16) / 16**8 < share


def unit_error_rate(refs: list[list[int]], hyps: list[list[int]]) -> float:
    """Total unit edit distance over total reference length."""
    words = (
        [" ".join(f"u{u}" for u in seq) or "<none>" for seq in refs],
        [" ".join(f"u{u}" for u in seq) or "<none>" for seq in hyps],
    )
    return float(jiwer.wer(*words))


def _batches(pairs: list, batch_size: int, rng: random.Random) -> list[list]:
    """Length-sorted batches in random order (little padding, no fixed order)."""
    ordered = sorted(pairs, key=lambda p: len(p[2]))
    batches = [ordered[i : i + batch_size] for i in range(0, len(ordered), batch_size)]
    rng.shuffle(batches)
    return batches


def train(t2u: T2U, pairs: list, preset: T2UPreset, seed: int, log_every: int = 50) -> list[float]:
    """``preset.steps`` AdamW steps on ``pairs``; the loss of each step."""
    steps = preset.steps
    torch.manual_seed(seed)
    rng = random.Random(seed)
    model = t2u.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=preset.lr, weight_decay=preset.weight_decay)
    warmup = max(1, int(steps * preset.warmup_fraction))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, 0.5 * (1 + math.cos(math.pi * s / steps)))
    )
    losses, batches, start = [], [], time.perf_counter()
    for step in range(steps):
        if not batches:
            batches = _batches(pairs, preset.batch_size, rng)
        batch = batches.pop()
        enc = t2u.encode([text for _, text, _ in batch])
        longest = max(len(u) for *_, u in batch) + 1
        labels = torch.full((len(batch), longest), -100, dtype=torch.long)
        for i, (*_, units) in enumerate(batch):
            labels[i, : len(units) + 1] = torch.tensor([u + t2u.offset for u in units] + [EOS])
        loss = model(**enc, labels=labels.to(model.device)).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), preset.gradient_clipping)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == steps:
            rate = (step + 1) / (time.perf_counter() - start)
            eta = (steps - step - 1) / rate
            print(
                f"train-t2u: step {step + 1}/{steps} loss {loss.item():.3f} "
                f"({rate:.1f} steps/s, eta {eta:.0f}s)",
                flush=True,
            )
    model.eval()
    return losses


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt train-t2u", description=__doc__)
    parser.add_argument("--units", nargs="+", required=True, help="tokenize output folders")
    parser.add_argument("--output", required=True, help="model folder (path or URI)")
    parser.add_argument("--preset", default="tiny", help="tiny, paper or a YAML file")
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--lr", type=float, help="default: the preset's")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    try:
        preset = load_preset(args.preset, steps=args.steps, batch_size=args.batch_size, lr=args.lr)
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))

    pairs, k = read_pairs(args.units)
    train_rows = [p for p in pairs if not held_out(p[0])]
    test_rows = [p for p in pairs if held_out(p[0])] or train_rows[:1]
    print(f"train-t2u: {len(train_rows)} training rows, {len(test_rows)} held out, K={k}")
    torch.manual_seed(args.seed)
    t2u = T2U(build_model(k, preset).to(args.device), build_tokenizer())
    refs, texts = [u for *_, u in test_rows], [t for _, t, _ in test_rows]
    baseline = unit_error_rate(refs, t2u.generate(texts))
    start = time.perf_counter()
    losses = train(t2u, train_rows, preset, args.seed)
    seconds = time.perf_counter() - start
    uer = unit_error_rate(refs, t2u.generate(texts))
    metrics = {
        "preset": args.preset,
        "k": k,
        "steps": preset.steps,
        "train_rows": len(train_rows),
        "heldout_rows": len(test_rows),
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "heldout_uer": uer,
        "untrained_uer": baseline,
        "train_seconds": round(seconds, 1),
        "units": args.units,
    }
    with storage.local_output(args.output) as local:
        t2u.save(local)
        Path(local, "t2u_metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
    print(
        f"train-t2u: held-out unit error rate {uer:.3f} (untrained {baseline:.3f}) -> {args.output}"
    )
    return metrics

"""``speechgpt train --stage 1|2|3``: one stage of SpeechGPT training on DeepSpeed (§4.2).

Stage 1 learns unit sequences (``pretrain``), stage 2 cross-modal instructions
(``cross_modal``), stage 3 chain-of-modality with LoRA (``chain_of_modality``). Each stage
starts from ``--base-model`` (stage 1: any causal LM, expanded here; stage 2: stage 1's
output; stage 3: stage 2's). Checkpoints every ``save_steps`` hold model, optimizer,
scheduler, RNG and data position; ``--resume`` continues exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from speechinstruct.templates import CHAIN_OF_MODALITY, CROSS_MODAL
from training import config as stage_config
from training import data as stage_data
from training.engine import initialize, single_process_defaults
from training.report import Metrics, plot_loss
from training.tokens import SpeechTokenizer, expand

CHECKPOINTS = "checkpoints"


def encode_stage(cfg, data: str, st: SpeechTokenizer) -> stage_data.Encoded:
    rows = stage_data.load_split(data, cfg.data_config, "train")
    if cfg.stage == 1:
        return stage_data.pack_units(rows, st, cfg.max_length)
    names = CROSS_MODAL if cfg.stage == 2 else CHAIN_OF_MODALITY
    return stage_data.encode_instructions(rows, st, cfg.max_length, names)


def add_lora(model, cfg):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.lora_targets), task_type="CAUSAL_LM")  # fmt: skip
    return get_peft_model(model, lora)


def schedule(cfg):
    """Linear warm-up, then cosine decay to 10% of the peak."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return factor


def _mean_loss(rows: list[dict]) -> float:
    return sum(r["loss"] for r in rows) / len(rows)


def load_base(path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    return model, tokenizer


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt train", description=__doc__)
    parser.add_argument("--stage", type=int, choices=(1, 2, 3), required=True)
    parser.add_argument("--config", required=True, help="YAML preset (or e.g. tiny/stage1)")
    parser.add_argument("--data", required=True, help="a published SpeechInstruct folder or Hub id")
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--steps", type=int, help="override the preset's steps")
    parser.add_argument("--num-units", type=int, help="K (default: from the dataset's build.json)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)  # set by `deepspeed`
    args = parser.parse_args(argv)
    cfg = stage_config.load(args.config, steps=args.steps, seed=args.seed)
    if cfg.stage != args.stage:
        parser.error(f"{args.config} is a stage {cfg.stage} config, not stage {args.stage}")
    single_process_defaults()
    torch.manual_seed(cfg.seed)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)

    model, tokenizer = load_base(args.base_model)
    if cfg.stage == 1:
        k = args.num_units or stage_data.dataset_units(args.data)
        if not k:
            parser.error("K unknown: pass --num-units (the dataset has no build.json)")
        old = expand(model, tokenizer, k, cfg.seed)
        print(f"train: vocabulary {old} -> {len(tokenizer)} (K={k} units + control tokens)")
    st = SpeechTokenizer(tokenizer)
    encoded = encode_stage(cfg, args.data, st)
    if not encoded.samples:
        raise ValueError(f"no training samples in {args.data} ({cfg.data_config})")
    print(f"train: {len(encoded.samples)} samples from {cfg.data_config}; dropped over "
          f"{cfg.max_length} tokens: {encoded.dropped_too_long}; real tokens "
          f"{encoded.efficiency:.1%}", flush=True)  # fmt: skip
    if cfg.stage == 3:
        model = add_lora(model, cfg)
        model.print_trainable_parameters()

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.9, 0.95),
                                  weight_decay=cfg.weight_decay)  # fmt: skip
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(cfg))
    engine = initialize(model, optimizer, scheduler, cfg)
    accumulation = engine.gradient_accumulation_steps()

    start = 0
    ckpt_dir = out / CHECKPOINTS
    if args.resume and (ckpt_dir / "latest").exists():
        _, client = engine.load_checkpoint(str(ckpt_dir))
        start = client["step"]
        torch.set_rng_state(client["rng"])
        print(f"train: resumed at step {start} from {ckpt_dir}", flush=True)
    metrics = Metrics(out, start)

    per_epoch = stage_data.batches(encoded.samples, cfg.micro_batch_size, cfg.seed, 0)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else st.eos
    engine.train()
    bar = tqdm(total=cfg.steps, initial=start, desc=f"stage {cfg.stage}", dynamic_ncols=True)
    for step in range(start, cfg.steps):
        tic, losses, tokens = time.perf_counter(), [], 0
        for micro in range(accumulation):
            m = step * accumulation + micro
            epoch, index = divmod(m, len(per_epoch))
            order = stage_data.batches(encoded.samples, cfg.micro_batch_size, cfg.seed, epoch)
            batch = stage_data.collate(encoded.samples, order[index], pad)
            loss = engine(**{k: v.to(engine.device) for k, v in batch.items()}).loss
            engine.backward(loss)
            engine.step()
            losses.append(loss.item())
            tokens += int(batch["attention_mask"].sum())
        row = {"step": step + 1, "loss": sum(losses) / len(losses),
               "lr": scheduler.get_last_lr()[0],
               "tokens_per_s": tokens / (time.perf_counter() - tic), "epoch": epoch}  # fmt: skip
        if (step + 1) % cfg.log_steps == 0 or step + 1 == cfg.steps:
            metrics.log(**row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
        bar.update(1)
        if (step + 1) % cfg.save_steps == 0 or step + 1 == cfg.steps:
            client = {"step": step + 1, "rng": torch.get_rng_state()}
            engine.save_checkpoint(str(ckpt_dir), tag=f"step{step + 1}", client_state=client)
    bar.close()

    engine.module.save_pretrained(out)
    tokenizer.save_pretrained(out)
    rows = metrics.rows()
    plot_loss(rows, out / "loss.png", f"stage {cfg.stage}")
    summary = {
        "stage": cfg.stage, "steps": cfg.steps, "samples": len(encoded.samples),
        "dropped_too_long": encoded.dropped_too_long, "packing_efficiency": encoded.efficiency,
        "dropped_tail_tokens": encoded.dropped_tail_tokens,
        # means over the first and last (up to) 5 logged steps: one batch's loss is noisy
        "first_loss": _mean_loss(rows[:5]), "final_loss": _mean_loss(rows[-5:]),
        "base_model": args.base_model, "data": args.data, "config": args.config,
    }  # fmt: skip
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(f"train: stage {cfg.stage} done, loss {summary['first_loss']:.3f} -> "
          f"{summary['final_loss']:.3f}; model -> {out}", flush=True)  # fmt: skip
    return summary

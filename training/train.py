"""``speechgpt train --stage 1|2|3``: one stage of SpeechGPT training on DeepSpeed (§4.2).

Stage 1 learns unit sequences (``pretrain``), stage 2 cross-modal instructions
(``cross_modal``) mixed with text chats (``text_chat``, §5.1), stage 3 chain-of-modality
with LoRA (``chain_of_modality``); ``configs/*/text_sft.yaml`` is §6.3's text-only SFT
baseline (stage 2 on ``text_chat`` alone, from the plain base LLM). Each stage
starts from ``--base-model`` (stage 1: any causal LM, expanded here; stage 2: stage 1's
output; stage 3: stage 2's).

On one CPU or many GPUs (``torchrun``/``deepspeed`` set the ranks): the stage's samples
are tokenized once into a memory-mapped token store (``training/store.py``) that all
ranks read; ranks draw disjoint micro-batches by the contract of ``training/sampler.py``;
rank 0 writes the model, tokenizer, ``metrics.jsonl``, ``loss.png`` and
``train_summary.json``. Checkpoints every ``save_steps`` hold model, optimizer, scheduler
and each rank's RNG; the data position follows from the step, so ``--resume`` continues
exactly.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from tqdm import tqdm

from training import config as stage_config
from training import data as stage_data
from training import engine as ds
from training import sampler, store
from training.model import DTYPES, STYLE_FILE, STYLES, load_model, load_tokenizer, save_tokenizer
from training.report import Metrics, plot_loss
from training.tokens import SpeechTokenizer, add_tokens, resize

CHECKPOINTS = "checkpoints"


def add_lora(model, cfg):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_targets),
        task_type="CAUSAL_LM",
    )
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


def stage_tokenizer(cfg, base_model: str, data: str, num_units: int | None):
    """The base model's tokenizer, with the unit and control tokens added for stage 1 (or
    a config that expands the vocabulary)."""
    tokenizer = load_tokenizer(base_model)
    if cfg.expands_vocabulary:
        k = num_units or stage_data.dataset_units(data)
        if not k:
            raise SystemExit("train: K unknown: pass --num-units (the dataset has no build.json)")
        add_tokens(tokenizer, k)
    return tokenizer


def recipe_of(cfg, data: str, style: str | None) -> store.Recipe:
    """The stage's settings that decide its token store; the prompt style from the flag,
    else from the dataset (an imported release file is ``released``); the chain-of-modality
    rows' templates from the prompting the dataset's ``build.json`` records."""
    mix = cfg.data_config
    return store.Recipe(
        cfg.stage,
        mix if isinstance(mix, str) else tuple(mix.items()),
        cfg.max_length,
        style=style or stage_data.dataset_style(data),
        seed=cfg.seed,
        prompting=stage_data.dataset_info(data).get("prompting", "com"),
    )


def load_rows(data: str, recipe: store.Recipe) -> dict:
    """The training rows of each data config the recipe mixes."""
    return {config: stage_data.load_split(data, config, "train") for config, _ in recipe.mix}


def prepare_store(
    recipe: store.Recipe, data: str, tokenizer: SpeechTokenizer, cache: Path | None, ranks
):
    """Rank 0 finds or builds the stage's token store; the other ranks wait for it."""
    folder = None
    if ranks.main:
        rows = load_rows(data, recipe)
        folder = store.locate(rows, tokenizer, recipe, cache)
        ranks.say(f"train: token store {folder}")
        ranks.share(folder)
        try:
            store.prepare(rows, tokenizer, recipe, cache)
        except Exception as e:  # the other ranks are waiting for this store: tell them
            store.mark_failed(folder, e)
            raise
    else:
        folder = ranks.share(folder)
    return store.wait_for(folder, say=print if ranks.main else lambda *a: None)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What ``train`` and ``prepare`` both take."""
    parser.add_argument("--stage", type=int, choices=(1, 2, 3), required=True)
    parser.add_argument("--config", required=True, help="YAML preset (or e.g. tiny/stage1)")
    parser.add_argument("--data", required=True, help="a published SpeechInstruct folder or Hub id")
    parser.add_argument("--base-model", required=True)
    parser.add_argument("--num-units", type=int, help="K (default: from the dataset's build.json)")
    parser.add_argument(
        "--prompt-style",
        choices=STYLES,
        help="the rows' format: paper (our templates) or released (the released SpeechGPT's); "
        "default: what the dataset records (paper when it records nothing)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where token stores live (default: $SPEECHGPT_CACHE or "
        "~/.cache/speechgpt); on several nodes, a filesystem they share",
    )


def load_config(parser, args, **overrides):
    cfg = stage_config.load(args.config, **overrides)
    if cfg.stage != args.stage:
        parser.error(f"{args.config} is a stage {cfg.stage} config, not stage {args.stage}")
    return cfg


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt train", description=__doc__)
    add_arguments(parser)
    parser.add_argument("--output", required=True)
    parser.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    parser.add_argument("--steps", type=int, help="override the preset's steps")
    parser.add_argument("--dtype", choices=sorted(DTYPES), help="override the preset's dtype")
    parser.add_argument(
        "--micro-batch-size",
        type=int,
        help="override the preset's sequences per rank and micro-step (the "
        "global batch stays: accumulation = batch / (micro × ranks))",
    )
    parser.add_argument("--seed", type=int)
    parser.add_argument("--local_rank", type=int, help=argparse.SUPPRESS)  # set by `deepspeed`
    args = parser.parse_args(argv)
    cfg = load_config(
        parser,
        args,
        steps=args.steps,
        seed=args.seed,
        dtype=args.dtype,
        micro_batch_size=args.micro_batch_size,
    )
    ranks = ds.init_distributed()
    if not ranks.main:  # one progress bar and one set of messages: rank 0's
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(cfg.seed)
    out = Path(args.output)
    if ranks.main:
        out.mkdir(parents=True, exist_ok=True)

    tokenizer = stage_tokenizer(cfg, args.base_model, args.data, args.num_units)
    st = SpeechTokenizer(tokenizer)
    recipe = recipe_of(cfg, args.data, args.prompt_style)
    token_store = prepare_store(recipe, args.data, st, args.cache_dir, ranks)
    samples = store.open_samples(token_store, cfg.max_length)
    meta = token_store.meta
    ranks.say(
        f"train: {len(samples)} samples from {recipe.label} ({meta['tokens']} tokens); "
        f"dropped over {cfg.max_length} tokens: {meta['dropped_too_long']}; "
        f"skipped rows: {meta['skipped'] or 'none'}"
    )

    config = ds.ds_config(cfg, ranks.world)
    model = load_model(
        args.base_model,
        cfg.dtype,
        ranks.device,
        zero3_config=config if cfg.zero_stage == 3 else None,
    )
    if cfg.expands_vocabulary:
        old = resize(model, len(tokenizer), cfg.seed)
        ranks.say(f"train: vocabulary {old} -> {len(tokenizer)} (K={st.k} units + control tokens)")
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.stage == 3:
        model = add_lora(model, cfg)
        if ranks.main:
            model.print_trainable_parameters()

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        trainable, lr=cfg.lr, betas=cfg.adam_betas, weight_decay=cfg.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule(cfg))
    engine = ds.initialize(model, optimizer, scheduler, config)
    accumulation = engine.gradient_accumulation_steps()

    start = 0
    ckpt_dir = out / CHECKPOINTS
    tag = ranks.share(ds.latest_tag(ckpt_dir) if ranks.main else None)
    if tag and not args.resume:
        raise SystemExit(
            f"train: {ckpt_dir} holds checkpoints of an earlier run (latest "
            f"{tag}): pass --resume to continue it, or another --output"
        )
    if tag:
        path, client = engine.load_checkpoint(str(ckpt_dir), tag=tag)
        if path is None:
            raise SystemExit(f"train: {ckpt_dir / tag} (named by `latest`) cannot be loaded")
        start = client["step"]
        if not ds.restore_rng(ckpt_dir / tag, ranks.rank):
            ranks.say(f"train: {tag} has no RNG state for rank {ranks.rank}; reseeded")
        ranks.say(f"train: resumed at step {start} from {ckpt_dir / tag}")
    metrics = Metrics(out, start) if ranks.main else None

    draw = sampler.MicroBatches(samples.lengths, cfg.micro_batch_size, cfg.seed, cfg.bucket)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else st.eos
    engine.train()
    bar = tqdm(
        total=cfg.steps,
        initial=start,
        desc=f"stage {cfg.stage}",
        dynamic_ncols=True,
        disable=not ranks.main,
    )
    for step in range(start, cfg.steps):
        tic, loss_sum, tokens = time.perf_counter(), 0.0, 0
        for m in sampler.rank_micro_batches(step, ranks.world, accumulation, ranks.rank):
            epoch, index = draw(m)
            batch = stage_data.collate([samples[int(i)] for i in index], pad)
            loss = engine(**{k: v.to(engine.device) for k, v in batch.items()}).loss
            engine.backward(loss)
            engine.step()
            loss_sum += loss.item()
            tokens += int(batch["attention_mask"].sum())
        loss_sum, tokens = ranks.sum([loss_sum, tokens])
        (elapsed,) = ranks.max([time.perf_counter() - tic])
        row = {
            "step": step + 1,
            "loss": loss_sum / (accumulation * ranks.world),
            "lr": scheduler.get_last_lr()[0],
            "tokens_per_s": tokens / elapsed,
            "epoch": epoch,
        }
        if metrics and ((step + 1) % cfg.log_steps == 0 or step + 1 == cfg.steps):
            metrics.log(**row)
        bar.set_postfix(loss=f"{row['loss']:.3f}", tok_s=f"{row['tokens_per_s']:.0f}")
        bar.update(1)
        if (step + 1) % cfg.save_steps == 0 or step + 1 == cfg.steps:
            save_checkpoint(engine, ckpt_dir, step + 1, cfg.keep_checkpoints, ranks)
    bar.close()

    state = ds.full_state_dict(engine)
    ranks.barrier()
    if not ranks.main:
        return {}
    engine.module.save_pretrained(out, state_dict=state)
    save_tokenizer(tokenizer, out)
    (out / STYLE_FILE).write_text(json.dumps({"prompt_style": recipe.style}) + "\n")
    rows = metrics.rows()
    plot_loss(rows, out / "loss.png", f"stage {cfg.stage}")
    summary = {
        "stage": cfg.stage,
        "steps": cfg.steps,
        "world_size": ranks.world,
        "accumulation": accumulation,
        "samples": len(samples),
        "rows": meta["rows"],
        "tokens": meta["tokens"],
        "configs": meta["configs"],
        "dropped_too_long": meta["dropped_too_long"],
        "skipped_rows": meta["skipped"],
        "token_store": str(token_store.folder),
        # means over the first and last (up to) 5 logged steps: one batch's loss is noisy
        "first_loss": _mean_loss(rows[:5]),
        "final_loss": _mean_loss(rows[-5:]),
        "base_model": args.base_model,
        "data": args.data,
        "config": args.config,
        "dtype": cfg.dtype,
        "prompt_style": recipe.style,
        "zero_stage": cfg.zero_stage,
    }
    if isinstance(samples, store.Blocks):
        summary |= {
            "packing_efficiency": samples.efficiency,
            "dropped_tail_tokens": samples.dropped_tail_tokens,
        }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"train: stage {cfg.stage} done, loss {summary['first_loss']:.3f} -> "
        f"{summary['final_loss']:.3f}; model -> {out}",
        flush=True,
    )
    return summary


def save_checkpoint(engine, folder: Path, step: int, keep: int, ranks) -> None:
    """All ranks write DeepSpeed's shards and their RNG; rank 0 then drops old checkpoints."""
    tag = f"step{step}"
    ds.save_rng(folder / tag, ranks.rank)  # before DeepSpeed writes `latest`
    engine.save_checkpoint(str(folder), tag=tag, client_state={"step": step})
    ranks.barrier()
    if ranks.main:
        ds.rotate(folder, keep, step)

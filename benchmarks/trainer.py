"""The trainer: stage-1 packing efficiency, and tokens/s of our stage-2 loop (DeepSpeed,
length buckets) vs a plain ``transformers.Trainer`` on the same tiny model and data.
Run: ``.venv/bin/python benchmarks/run.py trainer``."""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import torch
from results import machine, today, write_section

from pipelines import build, learn_kmeans, publish, tokenize
from pipelines.samples import LAYOUT, make_corpora
from speechinstruct.t2u import train as t2u_train
from speechinstruct.templates import CROSS_MODAL
from training import data as stage_data
from training import init_model, train
from training.tokens import SpeechTokenizer

CORPORA = LAYOUT  # corpus: (folder under the corpora root, split)
STEPS, BATCH = 60, 4


def published(root: Path) -> str:
    make_corpora(root / "c", 60, seed=0)
    km = str(root / "km.npy")
    learn_kmeans.run(["--corpus", "librilight", "--input", str(root / "c" / "librilight"),
                      "--k", "100", "--output", km])  # fmt: skip
    units = []
    for corpus, (folder, split) in CORPORA.items():
        out = str(root / "u" / corpus)
        argv = ["--corpus", corpus, "--input", str(root / "c" / folder), "--kmeans", km,
                "--output", out] + (["--split", split] if split else [])  # fmt: skip
        tokenize.run(argv)
        units.append(out)
    t2u_train.run(["--units", *units, "--output", str(root / "t2u"), "--steps", "20"])
    build.run(["--units", *units, "--chats", str(root / "c" / "moss" / "en_helpfulness.json"),
               "--t2u", str(root / "t2u"), "--kmeans", km, "--output", str(root / "b"),
               "--max-chats", "20"])  # fmt: skip
    publish.run(["--input", str(root / "b"), "--output", str(root / "ds")])
    return str(root / "ds")


def hf_trainer_tokens_per_s(model_dir: str, ds: str, steps: int) -> float:
    """A plain transformers.Trainer: random sampler, pad to the longest in each batch."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    model, tok = train.load_base(model_dir)
    st = SpeechTokenizer(tok)
    rows = stage_data.load_split(ds, "cross_modal", "train")
    enc = stage_data.encode_instructions(rows, st, 512, CROSS_MODAL)
    items = [{"input_ids": x, "labels": y} for x, y in enc.samples]
    tokens, times = [], []

    def collate(batch):
        out = stage_data.collate([(b["input_ids"], b["labels"]) for b in batch],
                                 list(range(len(batch))), tok.pad_token_id)  # fmt: skip
        tokens.append(int(out["attention_mask"].sum()))
        return out

    class StepTimer(TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            times.append([time.perf_counter()])

        def on_step_end(self, *args, **kwargs):
            times[-1].append(time.perf_counter())

    args = TrainingArguments(output_dir=str(Path(model_dir) / "hf"), max_steps=steps,
                             per_device_train_batch_size=BATCH, learning_rate=3e-3,
                             logging_steps=10**6, save_strategy="no", report_to=[],
                             use_cpu=True, dataloader_num_workers=0, seed=0)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=items, data_collator=collate,
                      callbacks=[StepTimer()])  # fmt: skip
    trainer.train()
    rates = [n / (end - start) for n, (start, end) in zip(tokens, times, strict=False)]
    return statistics.median(rates[5:])


def main() -> None:
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ds = published(root)
        base = init_model.run(["--data", ds, "--output", str(root / "base")])
        s1 = train.run(["--stage", "1", "--config", "tiny/stage1", "--data", ds,
                        "--base-model", base, "--output", str(root / "s1")])  # fmt: skip
        s1_dir, s2_dir = str(root / "s1"), str(root / "s2")
        train.run(["--stage", "2", "--config", "tiny/stage2", "--data", ds,
                   "--base-model", s1_dir, "--output", s2_dir, "--steps", str(STEPS)])  # fmt: skip
        rows = [json.loads(x) for x in (root / "s2" / "metrics.jsonl").read_text().splitlines()]
        ours_steps = [r["tokens_per_s"] for r in rows[5:]]
        ours = statistics.median(ours_steps)
        theirs = hf_trainer_tokens_per_s(str(root / "s1"), ds, STEPS)
    write_section(
        "trainer",
        f"""
## Trainer (issue: the trainer)

- Date: {today()}; machine: {machine()}
- Reproduce: `.venv/bin/python benchmarks/run.py trainer`
- Data: SpeechInstruct published from the sample corpora (60 utterances per corpus, MFCC
  K = 100); model: `init-model --preset tiny` (Llama architecture, 2 layers, d 128).

**Stage-1 packing efficiency** (real tokens / block slots, block 512):
**{s1["packing_efficiency"]:.1%}** ({s1["samples"]} full blocks; as `run_clm`, the
{s1["dropped_tail_tokens"]}-token tail shorter than a block is dropped). Target ≥ 98%.

**Stage 2, tokens/s** (real, non-pad tokens; batch {BATCH}, fp32, {STEPS} steps, same model
and data):

| loop | tokens/s |
|---|---|
| ours (`speechgpt train`, DeepSpeed, length buckets) | {ours:.0f} |
| `transformers.Trainer` (random sampler, pad to longest in batch) | {theirs:.0f} |

Ratio ours / Trainer: **{ours / theirs:.2f}×** (target ≥ 1.0×). Both are per-step medians
after 5 warm-up steps, in one run; each step's tokens are the real (non-pad) tokens of
its batch. Ours wins by batching similar lengths (less padding per real token).
""",
    )


if __name__ == "__main__":
    main()

"""``speechgpt eval --task continuation``: the speech continuation of §6.2, scored by ASR-PPL.

Each utterance of the unit shards (``--units OUT …``; the stable held-out 10 % unless
``--no-heldout``) longer than ``--prompt-seconds`` gives a prompt: the frame units of its
first 3 s (50 frames a second), reduced, put as stage 1 saw speech — ``<sosp>`` and the
unit tokens, no ``<eosp>``. The model continues it with unit tokens only (by default with
the released reference's sampling: temperature 0.7, top-p 0.8, top-k 50) up to ``<eosp>``
or ``--max-units``; the vocoder speaks the continuation, an ASR (pocketsphinx) writes down
what it hears, and a text LM (``--ppl-model``, any local HF causal LM folder, where the
paper used text-davinci-003) gives the transcript's perplexity. ASR-PPL is the mean over
the samples with a non-empty transcript; an empty one is kept as null and counted.
Writes ``continuation.json`` (every sample) and ``continuation.png`` (their PPLs).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from schemas import SAMPLE_RATE
from speechinstruct import storage
from speechinstruct.units import expand, reduce
from training.generate import SAMPLING, Settings, Talker
from training.model import load_for_inference, load_model, load_tokenizer

FRAME_RATE = 50  # unit frames a second (HuBERT's and the MFCC extractor's 20 ms hop)
PROMPT_SECONDS = 3.0  # §6.2: "the first 3 seconds of each utterance as a prompt"
MAX_SAMPLES = 100  # §6.2: 100 utterances of LibriSpeech test-clean

Asr = Callable[[np.ndarray], str]  # a 16 kHz wave → what is heard in it


@dataclass(frozen=True, slots=True)
class Prompt:
    id: str
    units: list[int]  # reduced


def prompt_units(units, durations, seconds: float = PROMPT_SECONDS) -> list[int] | None:
    """The reduced units of the first ``seconds`` of an utterance; None when it is not
    longer than that (nothing would be left to continue)."""
    frames = expand(units, durations)
    n = round(seconds * FRAME_RATE)
    if frames.size <= n:
        return None
    return reduce(frames[:n])[0].tolist()


def read_prompts(
    unit_dirs: list[str], seconds: float, heldout: bool, limit: int
) -> tuple[list[Prompt], int]:
    """Up to ``limit`` prompts, in id order, and how many utterances were passed over on
    the way as too short."""
    from vocoder.data import held_out, read_clips

    clips, _ = read_clips(unit_dirs)
    out, short = [], 0
    for clip in clips:
        if heldout and not held_out(clip.id):
            continue
        units = prompt_units(clip.units, clip.durations, seconds)
        if units is None:
            short += 1
            continue
        out.append(Prompt(clip.id, units))
        if len(out) == limit:
            break
    return out, short


class Perplexity:
    """A text LM's perplexity of a transcript: exp of the mean NLL of its tokens, each given
    the ones before it after the tokenizer's BOS (EOS when it has none, as GPT-2)."""

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model.eval(), tokenizer
        start = tokenizer.bos_token_id
        self.start = tokenizer.eos_token_id if start is None else start
        if self.start is None:
            raise ValueError("the PPL model's tokenizer has no BOS or EOS token to start from")

    @classmethod
    def load(cls, path: str, device: str = "cpu", dtype: str = "fp32") -> Perplexity:
        return cls(load_model(path, dtype, device), load_tokenizer(path))

    @torch.inference_mode()
    def __call__(self, text: str) -> float | None:
        """None for an empty transcript (there is nothing to score)."""
        ids = self.tokenizer(text.strip(), add_special_tokens=False)["input_ids"]
        if not ids:
            return None
        x = torch.tensor([[self.start, *ids]], device=self.model.device)
        return math.exp(self.model(input_ids=x, labels=x).loss.item())


def continue_speech(
    talker: Talker, vocoder, asr: Asr, ppl: Perplexity, prompts: list[Prompt]
) -> list[dict]:
    """One row per prompt: its continuation, what the ASR heard of it, and that text's PPL."""
    rows = []
    for i, p in enumerate(prompts, 1):
        units = talker.continue_units(p.units)
        wave = np.asarray(vocoder.synthesize(units), dtype=np.float32)
        if vocoder.sample_rate != SAMPLE_RATE:
            import librosa

            wave = librosa.resample(wave, orig_sr=vocoder.sample_rate, target_sr=SAMPLE_RATE)
        transcript = asr(wave).strip()
        score = ppl(transcript)
        rows.append(
            {
                "id": p.id,
                "prompt_units": p.units,
                "continuation_units": units,
                "transcript": transcript,
                "ppl": score,
            }
        )
        shown = "-" if score is None else f"{score:.1f}"
        print(
            f"[continuation] {i}/{len(prompts)} {p.id}: {len(p.units)} prompt units -> "
            f"{len(units)} units, heard {transcript!r}, PPL {shown}",
            flush=True,
        )
    return rows


def summarize(rows: list[dict]) -> dict:
    scored = [r["ppl"] for r in rows if r["ppl"] is not None]
    return {
        "asr_ppl": sum(scored) / len(scored) if scored else None,
        "samples": len(rows),
        "transcribed": len(scored),
        "empty_transcripts": len(rows) - len(scored),
    }


def plot(rows: list[dict], path: Path, title: str) -> None:
    """A histogram of the per-sample PPLs (log-spaced bins when they span over 10×), the
    mean marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    scored = [r["ppl"] for r in rows if r["ppl"] is not None]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    if scored:
        wide = max(scored) > 10 * min(scored)
        ax.hist(scored, bins=np.geomspace(min(scored), max(scored), 21) if wide else 20)
        if wide:
            ax.set_xscale("log")
        mean = sum(scored) / len(scored)
        ax.axvline(mean, color="k", ls="--", lw=1, label=f"mean {mean:.1f}")
        ax.legend()
    empty = len(rows) - len(scored)
    ax.set(
        xlabel="ASR-PPL of the transcript",
        ylabel="samples",
        title=f"{title} ({len(scored)} scored, {empty} empty)",
    )
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("--task continuation (§6.2, ASR-PPL)")
    group.add_argument("--units", nargs="+", help="tokenize outputs: the utterances to continue")
    group.add_argument(
        "--heldout",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="only the stable held-out 10%% of --units (default); --no-heldout for a test set",
    )
    group.add_argument("--ppl-model", help="a local HF causal LM folder that scores transcripts")
    group.add_argument(
        "--prompt-seconds",
        type=float,
        default=PROMPT_SECONDS,
        help="how much of each utterance is the prompt (default 3, as §6.2)",
    )
    group.add_argument(
        "--max-units",
        type=int,
        default=Settings.max_units,
        help=f"the longest continuation (default {Settings.max_units})",
    )
    group.add_argument(
        "--sampling",
        choices=sorted(SAMPLING),
        default="released",
        help="a preset (default: released, temperature 0.7, top-p 0.8, top-k 50); "
        "the flags below override it",
    )
    group.add_argument("--temperature", type=float, help="0: greedy")
    group.add_argument("--top-p", type=float)
    group.add_argument("--top-k", type=int, help="0: no cut")
    group.add_argument("--seed", type=int, default=0)


def check(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """The flags --task continuation needs and those it does not take (parser.error)."""
    for flag in ("units", "vocoder", "ppl_model"):
        if getattr(args, flag) is None:
            parser.error(f"--task continuation needs --{flag.replace('_', '-')}")
    for flag in ("data", "judge_model", "base_url", "prompt_style", "prompting", "max_new_tokens"):
        if getattr(args, flag, None) is not None:
            parser.error(f"--{flag.replace('_', '-')} is not used by --task continuation")
    if args.prompt_seconds <= 0:
        parser.error("--prompt-seconds must be positive")
    for flag in ("max_units", "max_samples"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")


def settings(args: argparse.Namespace) -> Settings:
    sampling = dict(SAMPLING[args.sampling])
    for key in ("temperature", "top_p", "top_k"):
        if getattr(args, key) is not None:
            sampling[key] = getattr(args, key)
    return Settings(max_units=args.max_units, seed=args.seed, **sampling)


def run(args: argparse.Namespace, asr: Asr | None = None) -> dict:
    """``speechgpt eval --task continuation`` from its parsed flags (``asr``: pocketsphinx
    unless given)."""
    from vocoder import load_vocoder

    prompts, short = read_prompts(
        args.units,
        args.prompt_seconds,
        args.heldout,
        MAX_SAMPLES if args.max_samples is None else args.max_samples,
    )
    if not prompts:
        raise ValueError(f"no utterance in --units is longer than {args.prompt_seconds:g} s")
    s = settings(args)
    model, tokenizer = load_for_inference(args.model, args.lora, args.device, args.dtype)
    vocoder = load_vocoder(storage.local_copy(args.vocoder))
    talker = Talker(model, tokenizer, None, vocoder, s)
    longest = 1 + max(len(p.units) for p in prompts) + s.max_units
    if longest > talker.window:
        raise ValueError(
            f"a prompt and --max-units {s.max_units} take up to {longest} tokens: more than "
            f"the model's {talker.window}-token context; lower --max-units"
        )
    ppl = Perplexity.load(args.ppl_model, str(model.device), args.dtype or "fp32")
    if asr is None:
        from training.eval_speech import Transcriber

        asr = Transcriber()

    start = time.perf_counter()
    rows = continue_speech(talker, vocoder, asr, ppl, prompts)
    report = {
        "task": "continuation",
        "model": args.model,
        "lora": args.lora,
        "units": args.units,
        "vocoder": args.vocoder,
        "ppl_model": args.ppl_model,
        "prompt_seconds": args.prompt_seconds,
        "settings": {
            k: getattr(s, k) for k in ("max_units", "temperature", "top_p", "top_k", "seed")
        },
        **summarize(rows),
        "too_short": short,
        "seconds": round(time.perf_counter() - start, 1),
        "rows": rows,
    }
    out = args.output or str(Path(args.lora or args.model))
    with storage.local_output(out) as local:
        Path(local, "continuation.json").write_text(json.dumps(report, indent=1) + "\n")
        plot(rows, Path(local, "continuation.png"), f"ASR-PPL of {Path(args.model).name}")
    mean = report["asr_ppl"]
    print(
        f"eval continuation: ASR-PPL {'-' if mean is None else f'{mean:.2f}'} over "
        f"{report['transcribed']} of {len(rows)} samples ({report['empty_transcripts']} heard "
        f"nothing) -> {out}/continuation.json"
    )
    return report

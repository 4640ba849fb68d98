"""``speechgpt train-vocoder``: fit a unit vocoder to the audio of ``tokenize`` outputs.

``--kind hifigan`` trains a unit HiFi-GAN as speech-resynthesis does (mel L1 × 45, LSGAN
multi-period and multi-scale discriminators, feature matching, duration MSE) on random
whole-frame segments; ``--kind baseline`` fits the fast per-unit mel vocoder. The HiFi-GAN
folder holds fairseq's layout: ``config.json``, ``g_XXXXXXXX`` generators (``{"generator":
state_dict}`` with ``weight_g``/``weight_v``, as fairseq loads them) and the newest
``do_XXXXXXXX`` (discriminators, optimizers, schedulers, step, RNG) for an exact ``--resume``.
Both kinds leave out the stable held-out 10% of clips (``vocoder.data.held_out``) that
``eval-speech --heldout`` scores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml

from vocoder import HOP, SAMPLE_RATE
from vocoder.data import Clip, held_out, read_clips
from vocoder.hifigan import (
    CodeGenerator,
    MelSpectrogram,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
    add_weight_norm,
    discriminator_loss,
    duration_loss,
    fairseq_state_dict,
    feature_loss,
    generator_loss,
    load_checkpoint,
    load_generator_state,
)

MEL_WEIGHT = 45  # HiFi-GAN's weight of the mel L1 term


CONFIGS = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Preset:
    """A vocoder preset (``configs/tiny.yaml``, ``configs/paper.yaml``)."""

    upsample_initial_channel: int
    resblock_kernel_sizes: tuple[int, ...]
    resblock_dilation_sizes: tuple[tuple[int, ...], ...]
    embedding_dim: int
    segment_size: int  # samples, whole 320-sample frames
    batch_size: int
    steps: int
    discriminator_width: int  # discriminator channels ÷ this (1: HiFi-GAN's own)
    learning_rate: float
    adam_b1: float
    adam_b2: float
    lr_decay: float  # per epoch
    upsample_rates: tuple[int, ...]
    upsample_kernel_sizes: tuple[int, ...]
    var_pred_kernel_size: int
    var_pred_dropout: float


def load_preset(preset: str) -> Preset:
    """A preset by name (``tiny``, ``paper``) or YAML path.

    The same idiom as ``speechinstruct.presets``, read here: this room imports nothing of ours.
    """
    path = Path(preset) if Path(preset).is_file() else CONFIGS / f"{preset}.yaml"
    if not path.is_file():
        shipped = ", ".join(sorted(p.stem for p in CONFIGS.glob("*.yaml")))
        raise FileNotFoundError(f"no preset {preset!r}: give a YAML file or one of {shipped}")
    tuples = lambda v: tuple(map(tuples, v)) if isinstance(v, list) else v  # noqa: E731
    return Preset(**{k: tuples(v) for k, v in yaml.safe_load(path.read_text()).items()})


def vocoder_config(preset: str, k: int, speakers: list[str] | None, seed: int) -> dict:
    """fairseq/speech-resynthesis config keys, so the folder also loads in fairseq."""
    p = load_preset(preset)
    dim = p.embedding_dim
    cfg = {
        "vocoder": "hifigan",
        "preset": preset,
        "resblock": "1",
        "upsample_rates": p.upsample_rates,
        "upsample_kernel_sizes": p.upsample_kernel_sizes,
        "upsample_initial_channel": p.upsample_initial_channel,
        "resblock_kernel_sizes": p.resblock_kernel_sizes,
        "resblock_dilation_sizes": p.resblock_dilation_sizes,
        "num_embeddings": k,
        "embedding_dim": dim,
        "model_in_dim": dim * (2 if speakers else 1),
        "dur_prediction_weight": 1.0,
        "dur_predictor_params": {
            "encoder_embed_dim": dim,
            "var_pred_hidden_dim": dim,
            "var_pred_kernel_size": p.var_pred_kernel_size,
            "var_pred_dropout": p.var_pred_dropout,
        },
        "segment_size": p.segment_size,
        "code_hop_size": HOP,
        "sampling_rate": SAMPLE_RATE,
        "num_mels": 80,
        "n_fft": 1024,
        "hop_size": 256,
        "win_size": 1024,
        "fmin": 0,
        "fmax": 8000,
        "fmax_for_loss": None,
        "batch_size": p.batch_size,
        "learning_rate": p.learning_rate,
        "adam_b1": p.adam_b1,
        "adam_b2": p.adam_b2,
        "lr_decay": p.lr_decay,
        "seed": seed,
        "discriminator_width": p.discriminator_width,
    }
    if speakers:
        cfg |= {"multispkr": True, "num_speakers": len(speakers), "speakers": speakers}
    return json.loads(json.dumps(cfg))  # tuples → lists, as read back from config.json


class Segments:
    """Batches of random ``frames``-frame windows; batch ``step`` depends only on (seed, step).

    Audio is peak-normalized to 0.95 and a clip shorter than a window is repeated, as
    speech-resynthesis does.
    """

    def __init__(
        self,
        clips: list[Clip],
        frames: int,
        batch_size: int,
        seed: int,
        speakers: list[str] | None = None,
    ):
        self.clips, self.frames, self.batch_size, self.seed = clips, frames, batch_size, seed
        self.speaker_ids = {s: i for i, s in enumerate(speakers)} if speakers else None
        self.steps_per_epoch = max(1, len(clips) // batch_size)
        self.audio = lru_cache(maxsize=4096)(self._audio)

    def _audio(self, i: int) -> np.ndarray:
        wave = self.clips[i].audio()
        return (wave * (0.95 / max(np.abs(wave).max(), 1e-8))).astype(np.float32)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(code (B, frames), audio (B, 1, frames × 320), speaker ids (B, 1) or None)``."""
        epoch, index = divmod(step, self.steps_per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.clips))
        order = np.resize(order, self.steps_per_epoch * self.batch_size)
        picks = order[index * self.batch_size : (index + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, epoch, index, 1])
        codes, waves = [], []
        for i in picks:
            code, wave = self.clips[i].frames, self.audio(i)
            repeats = -(-self.frames // len(code))  # ceil
            code, wave = np.tile(code, repeats), np.tile(wave, repeats)
            start = int(rng.integers(0, len(code) - self.frames + 1))
            codes.append(code[start : start + self.frames])
            waves.append(wave[start * HOP : (start + self.frames) * HOP])
        code = torch.from_numpy(np.stack(codes).astype(np.int64))
        audio = torch.from_numpy(np.stack(waves))[:, None]
        if self.speaker_ids is None:
            return code, audio, None
        spkr = torch.tensor([[self.speaker_ids[self.clips[i].speaker]] for i in picks])
        return code, audio, spkr


class HifiGanTrainer:
    """Generator, discriminators, their optimizers and schedulers; one GAN step at a time."""

    def __init__(self, cfg: dict, device: str = "cpu"):
        width = cfg["discriminator_width"]
        self.generator = add_weight_norm(CodeGenerator(cfg)).to(device).train()
        self.mpd = MultiPeriodDiscriminator(width=width).to(device).train()
        self.msd = MultiScaleDiscriminator(width=width).to(device).train()
        self.mel = MelSpectrogram(
            cfg["sampling_rate"],
            cfg["n_fft"],
            cfg["num_mels"],
            cfg["hop_size"],
            cfg["win_size"],
            cfg["fmin"],
            cfg["fmax_for_loss"],
        ).to(device)
        betas = (cfg["adam_b1"], cfg["adam_b2"])
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), cfg["learning_rate"], betas)
        discriminators = itertools.chain(self.msd.parameters(), self.mpd.parameters())
        self.optim_d = torch.optim.AdamW(discriminators, cfg["learning_rate"], betas)
        self.scheduler_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, cfg["lr_decay"])
        self.scheduler_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, cfg["lr_decay"])
        self.dur_weight = cfg.get("dur_prediction_weight") or 0.0
        self.device = device

    def step(self, code: torch.Tensor, y: torch.Tensor, spkr: torch.Tensor | None) -> dict:
        code, y = code.to(self.device), y.to(self.device)
        spkr = spkr.to(self.device) if spkr is not None else None
        y_hat = self.generator(code, spkr)
        y_mel, y_hat_mel = self.mel(y.squeeze(1)), self.mel(y_hat.squeeze(1))

        self.optim_d.zero_grad()
        real_f, fake_f, _, _ = self.mpd(y, y_hat.detach())
        real_s, fake_s, _, _ = self.msd(y, y_hat.detach())
        loss_d = discriminator_loss(real_f, fake_f) + discriminator_loss(real_s, fake_s)
        loss_d.backward()
        self.optim_d.step()

        self.optim_g.zero_grad()
        mel_l1 = F.l1_loss(y_hat_mel, y_mel)
        _, fake_f, fmap_rf, fmap_gf = self.mpd(y, y_hat)
        _, fake_s, fmap_rs, fmap_gs = self.msd(y, y_hat)
        adversarial = generator_loss(fake_f) + generator_loss(fake_s)
        matching = feature_loss(fmap_rf, fmap_gf) + feature_loss(fmap_rs, fmap_gs)
        dur = torch.zeros(())
        if self.generator.dur_predictor is not None and self.dur_weight:
            dur = duration_loss(self.generator, code)
        loss = adversarial + matching + MEL_WEIGHT * mel_l1 + self.dur_weight * dur
        loss.backward()
        self.optim_g.step()
        return {
            "loss": loss.item(),
            "mel_l1": mel_l1.item(),
            "adversarial": adversarial.item(),
            "feature_matching": matching.item(),
            "duration": dur.item(),
            "discriminator": loss_d.item(),
        }

    def end_epoch(self) -> None:
        self.scheduler_g.step()
        self.scheduler_d.step()

    def save(self, out: Path, step: int, elapsed: float) -> None:
        """``g_{step}`` (fairseq layout) and ``do_{step}``; older ``do_`` files are removed."""
        _save({"generator": fairseq_state_dict(self.generator)}, out / f"g_{step:08d}")
        state = {
            "mpd": self.mpd.state_dict(),
            "msd": self.msd.state_dict(),
            "optim_g": self.optim_g.state_dict(),
            "optim_d": self.optim_d.state_dict(),
            "scheduler_g": self.scheduler_g.state_dict(),
            "scheduler_d": self.scheduler_d.state_dict(),
            "steps": step,
            "elapsed": elapsed,
            "rng": torch.get_rng_state(),
        }
        _save(state, out / f"do_{step:08d}")
        for old in out.glob("do_*"):
            if old.name != f"do_{step:08d}":
                old.unlink()

    def resume(self, out: Path) -> tuple[int, float]:
        """Load the newest ``do_`` and its ``g_``: ``(step, elapsed seconds)``, or (0, 0)."""
        found = sorted(out.glob("do_[0-9]*"))
        if not found:
            return 0, 0.0
        state = load_checkpoint(found[-1])
        step = state["steps"]
        load_generator_state(self.generator, load_checkpoint(out / f"g_{step:08d}")["generator"])
        self.mpd.load_state_dict(state["mpd"])
        self.msd.load_state_dict(state["msd"])
        self.optim_g.load_state_dict(state["optim_g"])
        self.optim_d.load_state_dict(state["optim_d"])
        self.scheduler_g.load_state_dict(state["scheduler_g"])
        self.scheduler_d.load_state_dict(state["scheduler_d"])
        torch.set_rng_state(state["rng"])
        return step, state["elapsed"]


def _save(obj: dict, path: Path) -> None:
    """Write whole or not at all: a killed run never leaves a truncated newest checkpoint."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _plot(rows: list[dict], path: Path, title: str) -> None:
    """The mel L1 curve (this room imports nothing of ours, so not training.report's)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r["mel_l1"] for r in rows], lw=1.5)
    ax.set(xlabel="step", ylabel="mel L1 error", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def train_hifigan(args: argparse.Namespace, clips: list[Clip], k: int) -> dict:
    out = Path(args.output)
    speakers = sorted({c.speaker for c in clips}) if args.multispkr else None
    cfg = vocoder_config(args.preset, k, speakers, args.seed)
    config_path = out / "config.json"
    if not args.resume and any(out.glob("do_[0-9]*")):
        raise FileExistsError(f"{out} holds a training run: pass --resume or use a new folder")
    if args.resume and config_path.exists() and json.loads(config_path.read_text()) != cfg:
        raise ValueError(
            f"{config_path} differs from this run's settings; resume with the same "
            "--units, --preset, --seed and --multispkr"
        )
    out.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(cfg, indent=1) + "\n")

    torch.manual_seed(args.seed)
    trainer = HifiGanTrainer(cfg, args.device)
    start, elapsed = trainer.resume(out) if args.resume else (0, 0.0)
    if start:
        print(f"train-vocoder: resumed at step {start} from {out}", flush=True)
    steps = args.steps or load_preset(args.preset).steps
    segments = Segments(clips, cfg["segment_size"] // HOP, cfg["batch_size"], args.seed, speakers)
    metrics = out / "metrics.jsonl"
    kept = [r for r in _rows(metrics) if r["step"] <= start] if start else []
    metrics.write_text("".join(json.dumps(r) + "\n" for r in kept))  # steps past a resume re-run
    print(
        f"train-vocoder: preset {args.preset}, {segments.steps_per_epoch} steps per epoch",
        flush=True,
    )

    step, tic = start, time.perf_counter()
    while step < steps and time.perf_counter() - tic < (args.max_seconds or float("inf")):
        row = trainer.step(*segments.batch(step))
        step += 1
        if step % segments.steps_per_epoch == 0:
            trainer.end_epoch()
        row |= {
            "step": step,
            "lr": trainer.scheduler_g.get_last_lr()[0],
            "elapsed_s": round(elapsed + time.perf_counter() - tic, 2),
        }
        with metrics.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if step % args.log_every == 0 or step == steps:
            rate = (step - start) / (time.perf_counter() - tic)
            print(
                f"train-vocoder: step {step}/{steps} loss {row['loss']:.3f} mel L1 "
                f"{row['mel_l1']:.3f} disc {row['discriminator']:.3f} dur {row['duration']:.3f} "
                f"({rate:.2f} steps/s, {row['elapsed_s']:.0f}s)",
                flush=True,
            )
        if step % args.save_every == 0:
            trainer.save(out, step, row["elapsed_s"])
    if step > start and step % args.save_every:
        trainer.save(out, step, elapsed + time.perf_counter() - tic)

    rows = _rows(metrics)
    _plot(rows, out / "loss.png", f"unit HiFi-GAN ({args.preset})")
    head, tail = rows[:10], rows[-10:]
    summary = {
        "kind": "hifigan",
        "preset": args.preset,
        "k": k,
        "clips": len(clips),
        "steps": step,
        "first_mel_l1": sum(r["mel_l1"] for r in head) / max(1, len(head)),
        "final_mel_l1": sum(r["mel_l1"] for r in tail) / max(1, len(tail)),
        "train_seconds": rows[-1]["elapsed_s"] if rows else 0.0,
        "units": args.units,
    }
    (out / "train_summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(
        f"train-vocoder: mel L1 {summary['first_mel_l1']:.3f} -> {summary['final_mel_l1']:.3f} "
        f"after {step} steps -> {out}",
        flush=True,
    )
    return summary


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt train-vocoder", description=__doc__)
    parser.add_argument("--units", nargs="+", required=True, help="tokenize output folders")
    parser.add_argument("--output", required=True)
    parser.add_argument("--kind", choices=("hifigan", "baseline"), default="hifigan")
    parser.add_argument("--preset", default="tiny", help="tiny, paper or a YAML file")
    parser.add_argument("--steps", type=int, help="default: the preset's")
    parser.add_argument(
        "--max-seconds",
        type=float,
        help="a wall-clock budget: stop at this or --steps, whichever comes first",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from the newest do_*")
    parser.add_argument("--multispkr", action="store_true", help="learn a speaker embedding")
    parser.add_argument("--save-every", type=int, default=1000)
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    args = parser.parse_args(argv)
    try:
        load_preset(args.preset)
    except (FileNotFoundError, TypeError) as e:
        parser.error(f"--preset: {e}")
    if args.threads:
        torch.set_num_threads(args.threads)

    clips, k = read_clips(args.units)
    kept = [c for c in clips if not held_out(c.id)] or clips  # eval-speech scores the rest
    if not kept:
        raise ValueError(f"no utterances under {args.units}")
    print(f"train-vocoder: {len(kept)} training clips, {len(clips) - len(kept)} held out, K={k}")
    clips = kept
    if args.kind == "baseline":
        from vocoder.baseline import fit

        return fit(clips, k, Path(args.output), args.seed)
    return train_hifigan(args, clips, k)

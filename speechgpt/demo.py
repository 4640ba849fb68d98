"""``speechgpt demo``: the main job on the embedded default, one step after another.

Steps so far: write the sample corpora; learn MFCC k-means on the LibriLight sample;
tokenize all four corpora into unit shards (printing what was kept, rejected and
deduplicated); train the text-to-unit model; build SpeechInstruct; publish it as a
dataset folder; make a tiny Llama and run training stages 1–3 on the published dataset;
fit the fast baseline vocoder on the unit shards; speak a held-out evaluation question
with a TTS voice and ``talk`` to the stage-3 model with it. A second run reuses
finished steps. The last two lines are the answer's text and the path of its wav.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pipelines import build, learn_kmeans, publish, tokenize
from pipelines.samples import DEFAULT_UTTERANCES, LAYOUT, make_corpora
from schemas.outputs import MARKER
from speechgpt import talk
from speechinstruct import texts, tts
from speechinstruct.t2u import train as t2u_train
from training import init_model, train
from vocoder import train as vocoder_train

K = 100
T2U_STEPS = 300


def step(name: str, output: Path, done: bool, work: Callable[[], object]) -> None:
    """Run one step unless its output is already there; say how long it took and where."""
    start = time.perf_counter()
    if done:
        print(f"[{name}] reusing {output}", flush=True)
        return
    work()
    print(f"[{name}] {time.perf_counter() - start:.1f}s -> {output}", flush=True)


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="speechgpt demo", description=__doc__)
    parser.add_argument("--out", default=os.environ.get("DEMO_DIR", "demo-out"))
    parser.add_argument("--utterances", type=int, default=DEFAULT_UTTERANCES)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--t2u-steps", type=int, default=T2U_STEPS)
    parser.add_argument("--max-chats", type=int, help="chats for chain-of-modality (default all)")
    parser.add_argument(
        "--train-steps", type=int, help="steps per stage (default: the tiny presets)"
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    corpora = out / "corpora"

    marker = corpora / "corpus.json"
    wanted = {"utterances": args.utterances, "seed": args.seed}
    done = marker.exists() and {k: json.loads(marker.read_text())[k] for k in wanted} == wanted
    step("corpus", corpora, done, lambda: make_corpora(corpora, args.utterances, args.seed))

    km = out / "kmeans" / f"mfcc_k{K}.npy"
    step(
        "learn-kmeans",
        km,
        km.with_suffix(".json").exists(),
        lambda: learn_kmeans.run(
            [
                "--corpus",
                "librilight",
                "--input",
                str(corpora / "librilight"),
                "--split",
                "small",
                "--extractor",
                "mfcc",
                "--k",
                str(K),
                "--output",
                str(km),
                "--seed",
                str(args.seed),
            ]
        ),
    )

    for corpus, (folder, split) in LAYOUT.items():
        units = out / "units" / corpus
        argv = [
            "--corpus",
            corpus,
            "--input",
            str(corpora / folder),
            "--extractor",
            "mfcc",
            "--kmeans",
            str(km),
            "--output",
            str(units),
        ]
        argv += ["--split", split] if split else []
        step(
            f"tokenize {corpus}",
            units,
            (units / MARKER).exists(),
            lambda argv=argv: tokenize.run(argv),
        )
        stats = json.loads((units / "stats.json").read_text())
        print(
            f"[tokenize {corpus}] read {stats['read']}  kept {stats['kept']}  "
            f"rejected {stats['rejected'] or 0}  duplicates {stats['duplicates'] or 0}  "
            f"({stats['audio_seconds'] / 60:.1f} min of audio)",
            flush=True,
        )

    unit_dirs = [str(out / "units" / corpus) for corpus in LAYOUT]
    t2u = out / "t2u"
    step(
        "train-t2u",
        t2u,
        (t2u / "t2u_metrics.json").exists(),
        lambda: t2u_train.run(
            [
                "--units",
                *unit_dirs,
                "--output",
                str(t2u),
                "--steps",
                str(args.t2u_steps),
                "--seed",
                str(args.seed),
            ]
        ),
    )
    metrics = json.loads((t2u / "t2u_metrics.json").read_text())
    print(
        f"[train-t2u] held-out unit error rate {metrics['heldout_uer']:.3f} "
        f"(untrained {metrics['untrained_uer']:.3f})"
    )

    built = out / "speechinstruct-build"
    step(
        "build",
        built,
        (built / MARKER).exists(),
        lambda: build.run(
            [
                "--units",
                *unit_dirs,
                "--chats",
                str(corpora / "moss" / "en_helpfulness.json"),
                "--t2u",
                str(t2u),
                "--kmeans",
                str(km),
                "--output",
                str(built),
                "--seed",
                str(args.seed),
            ]
            + (["--max-chats", str(args.max_chats)] if args.max_chats else [])
        ),
    )
    dataset = out / "speechinstruct"
    step(
        "publish",
        dataset,
        (dataset / MARKER).exists(),
        lambda: publish.run(["--input", str(built), "--output", str(dataset)]),
    )
    counts = json.loads((built / "build.json").read_text())["counts"]
    print(f"[publish] {json.dumps({k: v for k, v in counts.items() if k != 'rejects'})}")

    base = out / "models" / "base"
    step(
        "init-model",
        base,
        (base / "config.json").exists(),
        lambda: init_model.run(
            ["--data", str(dataset), "--output", str(base), "--seed", str(args.seed)]
        ),
    )
    previous = base
    for stage in (1, 2, 3):
        target = out / "models" / f"stage{stage}"
        # --resume: a demo that was stopped mid-stage continues from its checkpoint
        argv = [
            "--stage",
            str(stage),
            "--config",
            f"tiny/stage{stage}",
            "--data",
            str(dataset),
            "--base-model",
            str(previous),
            "--output",
            str(target),
            "--resume",
        ]
        argv += ["--steps", str(args.train_steps)] if args.train_steps else []
        step(
            f"train stage {stage}",
            target,
            (target / "train_summary.json").exists(),
            lambda argv=argv: train.run(argv),
        )
        summary = json.loads((target / "train_summary.json").read_text())
        first, final = summary["first_loss"], summary["final_loss"]
        configs = ", ".join(f"{c} {m['samples']}" for c, m in summary["configs"].items())
        print(
            f"[train stage {stage}] loss {first:.3f} -> {final:.3f} over {summary['steps']} "
            f"steps; samples: {configs}"
        )
        previous = target

    voc = out / "vocoder"
    step(
        "vocoder",
        voc,
        (voc / "config.json").exists(),
        lambda: vocoder_train.run(
            ["--kind", "baseline", "--units", *unit_dirs, "--output", str(voc)]
        ),
    )

    question = out / "talk" / "question.wav"
    asked = texts.eval_pairs()[0]["instruction"]  # the eval config: never trained on
    step("speak question", question, question.exists(), lambda: speak(asked, question))
    print(f"[speak question] {asked!r}, spoken by flite slt -> {question}")
    answer = out / "talk" / "answer.json"
    step(
        "talk",
        answer,
        answer.exists(),
        lambda: ask(
            [
                "--model",
                str(out / "models" / "stage2"),
                "--lora",
                str(out / "models" / "stage3"),
                "--kmeans",
                str(km),
                "--vocoder",
                str(voc),
                "--wav",
                str(question),
                "--out",
                str(out / "talk" / "answer.wav"),
            ],
            answer,
        ),
    )
    said = json.loads(answer.read_text())
    print(f"answer text: {said['text']}")
    print(f"answer wav: {said['wav']}")
    sys.stdout.flush()


def speak(text: str, path: Path) -> None:
    import soundfile as sf

    wave, sr = tts.speak(text, tts.voice("slt"))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave, sr)


def ask(argv: list[str], record: Path) -> None:
    turn = talk.run(argv)
    said = {
        "transcript": turn.transcript,
        "text": turn.text,
        "units": len(turn.units),
        "wav": str(turn.wav),
    }
    record.write_text(json.dumps(said, indent=1) + "\n")

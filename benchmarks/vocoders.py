"""Vocoders judged by pocketsphinx: WER of (a) held-out sample speech as recorded and
(b) its units resynthesized by the fast baseline and by the tiny unit HiFi-GAN after a
fixed CPU budget. Run: ``.venv/bin/python benchmarks/run.py vocoders``."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from results import machine, today, write_section

from pipelines import learn_kmeans, tokenize
from pipelines.samples import LAYOUT, make_corpora
from training import eval_speech
from vocoder import train as vocoder_train

UTTERANCES, K = 80, 100
HIFIGAN_SECONDS = 900  # the fixed CPU budget for the HiFi-GAN
SAMPLES = 40  # held-out utterances with text, at most


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_corpora(root / "c", UTTERANCES, seed=0)
        km = str(root / "km.npy")
        learn_kmeans.run(
            [
                "--corpus",
                "librilight",
                "--input",
                str(root / "c" / "librilight"),
                "--split",
                "small",
                "--k",
                str(K),
                "--output",
                km,
            ]
        )
        units = []
        for corpus, (folder, split) in LAYOUT.items():
            out = str(root / "u" / corpus)
            argv = [
                "--corpus",
                corpus,
                "--input",
                str(root / "c" / folder),
                "--kmeans",
                km,
                "--output",
                out,
            ]
            tokenize.run(argv + (["--split", split] if split else []))
            units.append(out)
        timing, reports = {}, {}
        for kind, extra in (
            ("baseline", []),
            (
                "hifigan",
                ["--preset", "tiny", "--max-seconds", str(HIFIGAN_SECONDS), "--steps", "1000000"],
            ),
        ):
            start = time.perf_counter()
            summary = vocoder_train.run(
                ["--kind", kind, "--units", *units, "--output", str(root / kind), *extra]
            )
            timing[kind] = (time.perf_counter() - start, summary)
            reports[kind] = eval_speech.run(
                [
                    "--units",
                    *units,
                    "--heldout",
                    "--vocoder",
                    str(root / kind),
                    "--max-samples",
                    str(SAMPLES),
                    "--output",
                    str(root / f"eval-{kind}"),
                ]
            )
    base, hifi = reports["baseline"], reports["hifigan"]
    steps = timing["hifigan"][1]["steps"]
    rows = "\n".join(
        f"| {name} | {r['wer']['original']:.3f} | {r['wer']['resynthesized']:.3f} | "
        f"{r['wer']['resynthesized_predicted_durations']:.3f} | {timing[kind][0] / 60:.1f} min |"
        for kind, name, r in (
            ("baseline", "baseline (context log-mel + Griffin-Lim)", base),
            ("hifigan", f"unit HiFi-GAN, tiny preset, {steps} steps", hifi),
        )
    )
    example = next((e for e in base["examples"] if e["original"]), base["examples"][0])
    write_section(
        "vocoder",
        f"""
## Vocoders (issue: units back to speech)

- Date: {today()}; machine: {machine()}
- Reproduce: `.venv/bin/python benchmarks/run.py vocoders`
- Data: the sample corpora (`make_corpora(utterances={UTTERANCES})`, all four, real flite and
  espeak-ng voices), MFCC units with K = {K} (k-means on the LibriLight sample). Vocoders
  train on all clips but the stable held-out 10%; WER is on {base["samples"]} held-out
  utterances with text, judged by pocketsphinx (its bundled US English model), `jiwer` on
  normalized text.
- (a) original: the recorded audio. (b) resynthesized: the units with their extracted
  durations; "predicted durations": the reduced units with the vocoder's own durations.

| vocoder | (a) original | (b) resynthesized | (b) predicted durations | fit/train time |
|---|---|---|---|---|
{rows}

The HiFi-GAN budget is {HIFIGAN_SECONDS / 60:.0f} wall-clock minutes on this 2-core machine
({steps} steps; the released vocoder trained 500k steps on GPUs). Example (baseline): reference
"{example["reference"]}"; original heard as "{example["original"]}"; resynthesized heard as
"{example["resynthesized"]}".
""",
    )
    print(json.dumps({k: r["wer"] for k, r in reports.items()}, indent=1))


if __name__ == "__main__":
    main()

"""``speechgpt eval-speech``: how intelligible is speech, by pocketsphinx word error rate.

pocketsphinx (its PyPI package ships an English acoustic model and language model) is an
ASR that knows nothing of our units or models, so it judges fairly:

- (a) ``original``: the audio as recorded;
- (b) ``resynthesized``: the audio's units → ``--vocoder`` (durations as extracted), and
  ``resynthesized_predicted_durations``: the reduced units with the vocoder's own durations;
- (c) ``model``: the reference text → ``--model`` (TTS instruction) → units → vocoder.

Input is either unit shards (``--units OUT …``: rows with text; ``--heldout`` keeps the
stable 10 % that ``train-vocoder`` and ``train-t2u`` leave out) or a folder of audio files
each with a ``.txt`` transcript beside it (``--audio-dir``; units then come from
``--extractor``/``--kmeans``). Writes ``eval_speech.json`` and, per sample, a PNG of the
original and resynthesized log-mel spectrograms.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from schemas import SAMPLE_RATE
from speechinstruct import storage
from speechinstruct.t2u.model import normalize_text
from training.generate import Talker, load_wave
from vocoder import load_vocoder
from vocoder.data import held_out, read_clips

AUDIO = (".wav", ".flac", ".mp3", ".opus", ".ogg")


@dataclass
class Sample:
    id: str
    text: str
    wave: np.ndarray
    units: np.ndarray | None = None  # reduced
    durations: np.ndarray | None = None


class Transcriber:
    """pocketsphinx's default US English models.

    A fresh decoder per utterance (~0.4 s): a reused one carries its live cepstral mean
    across utterances, so the same audio would be heard differently after other audio.
    """

    def __call__(self, wave: np.ndarray) -> str:
        from pocketsphinx import Decoder

        decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        pcm = (np.clip(wave, -1.0, 1.0) * 32767).astype(np.int16).tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp else ""


def from_units(unit_dirs: list[str], heldout: bool) -> list[Sample]:
    clips, _ = read_clips(unit_dirs)
    return [
        Sample(c.id, c.text, c.audio(), c.units, c.durations)
        for c in clips
        if c.text and (not heldout or held_out(c.id))
    ]


def from_folder(folder: str, extractor) -> list[Sample]:
    from speechinstruct.units import reduce

    samples = []
    for audio in sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO):
        transcript = audio.with_suffix(".txt")
        if not transcript.exists():
            print(f"eval-speech: skipping {audio} (no {transcript.name} beside it)")
            continue
        wave = load_wave(audio)
        sample = Sample(audio.stem, transcript.read_text().strip(), wave)
        if extractor is not None:
            sample.units, sample.durations = reduce(extractor([wave])[0])
        samples.append(sample)
    return samples


def wer(refs: list[str], hyps: list[str]) -> float:
    import jiwer

    return float(
        jiwer.wer(
            [normalize_text(r) or "-" for r in refs], [normalize_text(h) or "-" for h in hyps]
        )
    )


def evaluate(samples: list[Sample], vocoder, talker, out: Path) -> dict:
    """WER of each kind of speech over ``samples``; mel PNGs under ``out/mels``."""
    from training.report import mel_comparison

    asr = Transcriber()
    start = time.perf_counter()
    hyps: dict[str, list[str]] = {}
    examples = []
    for i, s in enumerate(samples, 1):
        got = {"original": asr(s.wave)}
        if vocoder is not None and s.units is not None:
            resynth = vocoder.synthesize(s.units, s.durations)
            got["resynthesized"] = asr(resynth)
            got["resynthesized_predicted_durations"] = asr(vocoder.synthesize(s.units))
            mel_comparison(s.wave, resynth, SAMPLE_RATE, out / "mels" / f"{s.id}.png", s.text)
        if talker is not None:
            _, spoken = talker.speak(s.text)
            got["model"] = asr(spoken) if spoken is not None else ""
        for key, hyp in got.items():
            hyps.setdefault(key, []).append(hyp)
        examples.append({"id": s.id, "reference": s.text, **got})
        print(
            f"[eval-speech] {i}/{len(samples)} {s.id}: "
            + "  |  ".join(f"{k}: {v}" for k, v in got.items()),
            flush=True,
        )
    refs = [s.text for s in samples]
    report = {
        "samples": len(samples),
        "wer": {key: wer(refs, h) for key, h in hyps.items()},
        "seconds": round(time.perf_counter() - start, 1),
        "examples": examples,
    }
    return report


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="speechgpt eval-speech",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--units", nargs="+", help="tokenize outputs (rows with text)")
    source.add_argument("--audio-dir", help="audio files with a .txt transcript beside each")
    parser.add_argument("--heldout", action="store_true", help="only the held-out 10%% of --units")
    parser.add_argument("--vocoder", help="a vocoder folder: adds (b)")
    parser.add_argument("--model", help="a SpeechGPT model: adds (c) (needs --vocoder)")
    parser.add_argument("--lora", help="a stage-3 adapter on top of --model")
    parser.add_argument("--extractor", default="mfcc", choices=("mfcc", "hubert"))
    parser.add_argument("--checkpoint", help="HuBERT checkpoint, for --audio-dir")
    parser.add_argument("--layer", type=int, default=11)
    parser.add_argument("--kmeans", help="k-means centroids, for --audio-dir")
    parser.add_argument("--max-samples", type=int, default=20)
    parser.add_argument("--output", required=True, help="folder for eval_speech.json and PNGs")
    args = parser.parse_args(argv)
    if args.model and not args.vocoder:
        parser.error("--model needs --vocoder (the model's units are judged as speech)")
    extractor = None
    if args.audio_dir and args.kmeans:
        from speechinstruct.extractors import ExtractorSpec, UnitExtractor

        extractor = UnitExtractor(
            ExtractorSpec(args.extractor, args.checkpoint, args.layer), args.kmeans
        )
    samples = (
        from_units(args.units, args.heldout)
        if args.units
        else from_folder(args.audio_dir, extractor)
    )[: args.max_samples]
    if not samples:
        parser.exit(2, "speechgpt eval-speech: no samples with text found\n")
    vocoder = load_vocoder(storage.local_copy(args.vocoder)) if args.vocoder else None
    talker = None
    if args.model:
        talker = Talker.load(args.model, args.lora, extractor, vocoder)

    with storage.local_output(args.output) as local:
        (Path(local) / "mels").mkdir(parents=True, exist_ok=True)
        report = evaluate(samples, vocoder, talker, Path(local))
        report.update(vocoder=args.vocoder, model=args.model, lora=args.lora)
        (Path(local) / "eval_speech.json").write_text(json.dumps(report, indent=1) + "\n")
    out = args.output
    print(
        "eval-speech: WER "
        + "  ".join(f"{k} {v:.3f}" for k, v in report["wer"].items())
        + f" over {len(samples)} samples -> {out}/eval_speech.json"
    )
    return report

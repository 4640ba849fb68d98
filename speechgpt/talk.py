"""``speechgpt talk``: speak or type to a SpeechGPT model; get its text and a wav back.

One-shot (``--wav PATH`` or ``--text "…"``) or interactive (no input flag: type a line,
or a path to an audio file; ``/reply speech|text``, ``/reset``, ``/quit``).

The prompt is chain-of-modality (Appendix C): a spoken question is first transcribed
(``[tq]``), then answered in text (``[ta]``), then spoken (``[ua]``) when the reply is
speech; ``training/generate.py`` holds the engine and says how each section is generated.
``--prompting standard`` asks with Appendix E's templates instead (the answer goes
straight to speech or text), for §6.1's ablation. ``--prompt-style released`` talks
to the released SpeechGPT-7B-cm/-com in their own format (picked by itself when the
tokenizer has no ``<eoa>`` token).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from schemas import SAMPLE_RATE
from speechinstruct.instructions import PROMPTING
from training.generate import SAMPLING, Settings, Talker, TalkError, Turn, load_wave
from training.model import STYLES, add_device_arguments


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """What talk and the web app need: a model, an extractor + k-means, a vocoder."""
    parser.add_argument("--model", required=True, help="a stage-2 model or merged stage-3 folder")
    parser.add_argument("--lora", help="a stage-3 adapter folder on top of --model")
    parser.add_argument("--extractor", default="mfcc", choices=("mfcc", "hubert"))
    parser.add_argument("--checkpoint", help="HuBERT checkpoint (HF folder or fairseq .pt)")
    parser.add_argument("--layer", type=int, default=11)
    parser.add_argument("--kmeans", required=True, help="k-means centroids (.npy or .bin)")
    parser.add_argument("--vocoder", required=True, help="a vocoder folder (train-vocoder)")
    parser.add_argument("--max-text-tokens", type=int, default=Settings.max_text_tokens)
    parser.add_argument("--max-units", type=int, default=Settings.max_units)
    add_device_arguments(parser)
    parser.add_argument(
        "--prompt-style",
        choices=STYLES,
        help="paper (Appendix C templates) or released (the released "
        "SpeechGPT's format); default: what the model folder records",
    )
    parser.add_argument(
        "--prompting",
        choices=sorted(PROMPTING),
        default="com",
        help="com: chain-of-modality (Appendix C, the default); standard: the answer "
        "straight to speech or text (Appendix E, the ablation of §6.1)",
    )
    parser.add_argument(
        "--sampling",
        choices=sorted(SAMPLING),
        help="a preset: greedy, or released (temperature 0.7, top-p 0.8, "
        "top-k 50, as the reference); flags below override it",
    )
    parser.add_argument("--temperature", type=float, help="0: greedy (the default)")
    parser.add_argument("--top-p", type=float, help=f"default {Settings.top_p}")
    parser.add_argument("--top-k", type=int, help="0: no cut (the default)")
    parser.add_argument("--seed", type=int, default=0)


def load_talker(args: argparse.Namespace) -> Talker:
    from speechinstruct.extractors import ExtractorSpec, UnitExtractor
    from vocoder import load_vocoder

    spec = ExtractorSpec(args.extractor, args.checkpoint, args.layer)
    sampling = dict(SAMPLING[args.sampling]) if args.sampling else {}
    for key in ("temperature", "top_p", "top_k"):
        if getattr(args, key) is not None:
            sampling[key] = getattr(args, key)
    settings = Settings(args.max_text_tokens, args.max_units, seed=args.seed, **sampling)
    return Talker.load(
        args.model,
        args.lora,
        UnitExtractor(spec, args.kmeans),
        load_vocoder(args.vocoder),
        settings,
        args.prompt_style,
        args.device,
        args.dtype,
        args.prompting,
    )


def show(turn: Turn, out: Path | None) -> Turn:
    """Print a turn the way talk does; write its speech to ``out``."""
    import soundfile as sf

    if turn.dropped:
        print(f"(history: dropped the {turn.dropped} oldest turn(s) to fit the context)")
    if turn.transcript is not None:
        print(f"transcript: {turn.transcript}")
    if turn.audio is not None and out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, turn.audio, SAMPLE_RATE)
        turn.wav = out
        seconds = len(turn.audio) / SAMPLE_RATE
        print(f"answer speech: {len(turn.units)} units, {seconds:.1f} s ({turn.seconds:.1f} s)")
    print(f"answer text: {turn.text}")
    if turn.wav is not None:
        print(f"answer wav: {turn.wav}")
    return turn


def interact(talker: Talker, reply: str, out_dir: Path) -> None:
    print("talk: type a question, or the path of an audio file; /reply speech|text, /reset, /quit")
    n = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/reset":
            talker.reset()
            print("(history cleared)")
            continue
        if line.startswith("/reply"):
            reply = line.split()[-1]
            print(f"(replies in {reply})")
            continue
        n += 1
        try:
            if Path(line).suffix and Path(line).is_file():
                turn = talker.turn(wave=load_wave(line), reply=reply)
            else:
                turn = talker.turn(text=line, reply=reply)
        except TalkError as e:
            print(f"talk: {e}")
            continue
        show(turn, out_dir / f"turn{n:03d}.wav")


def run(argv: list[str] | None = None) -> Turn | None:
    parser = argparse.ArgumentParser(
        prog="speechgpt talk",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_arguments(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--wav", help="a spoken question (any format ffmpeg reads)")
    source.add_argument("--text", help="a typed question")
    parser.add_argument("--reply", choices=("speech", "text"), default="speech")
    parser.add_argument("--out", default="answer.wav", help="where to write the spoken answer")
    args = parser.parse_args(argv)
    try:
        wave = load_wave(args.wav) if args.wav else None
        if args.text is not None and not args.text.strip():
            raise TalkError("the text is empty")
    except TalkError as e:
        parser.exit(2, f"speechgpt talk: {e}\n")
    try:
        talker = load_talker(args)
    except ValueError as e:  # e.g. --prompting standard with the released prompt style
        parser.exit(2, f"speechgpt talk: {e}\n")
    if wave is None and args.text is None:
        interact(talker, args.reply, Path(args.out).with_suffix(""))
        return None
    return show(talker.turn(text=args.text, wave=wave, reply=args.reply), Path(args.out))

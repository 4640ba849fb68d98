"""``speechgpt vocode``: units → a wav, with any vocoder folder.

``--units`` is a unit string (``<sosp><12><7>…<eosp>``, or just ``<12><7>…``), plain
unit ids separated by spaces or commas, or a file holding either. Units are taken as
reduced (durations predicted) unless ``--frames`` says they are 50 Hz frame units.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import soundfile as sf

from vocoder import HOP, load_vocoder

_TAGGED = re.compile(r"<(\d+)>")


def parse(text: str) -> list[int]:
    """Unit ids from ``<sosp><12><7><eosp>``, ``<12><7>`` or ``12 7`` / ``12,7``."""
    text = text.strip()
    units = _TAGGED.findall(text) if "<" in text else re.split(r"[\s,]+", text)
    try:
        return [int(u) for u in units if u]
    except ValueError as e:
        raise ValueError(f"cannot read units from {text[:60]!r}: {e}") from None


def run(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(prog="speechgpt vocode", description=__doc__)
    parser.add_argument("--vocoder", required=True, help="a vocoder folder (or checkpoint file)")
    parser.add_argument("--units", required=True, help="a unit string or a file holding one")
    parser.add_argument("--out", required=True, help="the wav to write")
    parser.add_argument("--speaker", type=int, help="speaker id (multi-speaker vocoders)")
    parser.add_argument("--frames", action="store_true", help="frame units, not reduced")
    args = parser.parse_args(argv)
    text = Path(args.units).read_text() if Path(args.units).is_file() else args.units
    try:
        units = parse(text)
    except ValueError as e:
        parser.exit(2, f"speechgpt vocode: {e}\n")
    if not units:
        parser.exit(2, "speechgpt vocode: no units given\n")
    vocoder = load_vocoder(args.vocoder)
    durations = [1] * len(units) if args.frames else None
    wave = vocoder.synthesize(units, durations, speaker=args.speaker)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sf.write(out, wave, vocoder.sample_rate)
    frames = len(wave) // HOP
    print(
        f"vocode: {len(units)} units -> {frames} frames, {len(wave) / vocoder.sample_rate:.2f} s"
        f" -> {out}"
    )
    return out

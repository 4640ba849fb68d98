"""A small GigaSpeech: Opus podcasts, ``GigaSpeech.json`` with tagged ``text_tn`` segments."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.samples.speech import add_noise, speak_all, voiced_span, write_opus
from schemas import SAMPLE_RATE
from speechinstruct.tts import voice

TRAIN_XS = ["{XL}", "{L}", "{M}", "{S}", "{XS}"]
FILES = (  # voices alternating within a podcast, segment subsets
    (("rms", "slt"), TRAIN_XS),
    (("en-us-m3", "awb"), TRAIN_XS[:-1]),
    (("kal16",), ["{DEV}"]),
    (("en-us-f2",), ["{TEST}"]),
)
GARBAGE = ("<SIL>", "<NOISE>", "<MUSIC>")
MARKS = {",": " <COMMA>", ".": " <PERIOD>", "?": " <QUESTIONMARK>", "!": " <EXCLAMATIONPOINT>"}


def to_text_tn(sentence: str) -> str:
    """GigaSpeech's ``text_tn`` style: upper case, punctuation as tags."""
    text = re.sub(r"[,.?!]", lambda m: MARKS[m.group()], sentence.upper())
    return " ".join(text.split())


def _garbage_audio(tag: str, rng: np.random.Generator) -> np.ndarray:
    n = int(1.5 * SAMPLE_RATE)
    if tag == "<NOISE>":
        return (rng.standard_normal(n) * 0.05).astype(np.float32)
    if tag == "<MUSIC>":
        t = np.arange(n) / SAMPLE_RATE
        notes = 220 * 2 ** (np.floor(t * 4) % 5 / 12)
        return (0.2 * np.sin(2 * np.pi * notes * t)).astype(np.float32)
    return np.zeros(n, dtype=np.float32)


def write(out: Path, sentences: Iterator[str], utterances: int, seed: int) -> list[dict]:
    """Write the corpus; returns per segment its sid, speaker, subsets and sentence."""
    rng = random.Random(f"{seed}-gigaspeech")
    noise = np.random.default_rng(seed + 3)
    root = out / "GigaSpeech"
    per_file = max(3, utterances // len(FILES))
    texts = iter(sentences)
    audios, expected = [], []
    for f, (names, subsets) in enumerate(FILES):
        aid = f"POD{f + 1:010d}"
        rel = f"audio/podcast/P{f // 100 + 1:04d}/{aid}.opus"  # P0001 holds the first
        chunk = [next(texts) for _ in range(per_file)]
        waves = speak_all([(t, voice(names[i % len(names)])) for i, t in enumerate(chunk)])
        pieces, segments, offset = [], [], 0
        garbage_at = rng.randrange(per_file)
        for i, (text, wave) in enumerate(zip(chunk, waves, strict=True)):
            if i == garbage_at:
                tag = GARBAGE[f % len(GARBAGE)]
                piece = _garbage_audio(tag, noise)
                segments.append((offset, offset + len(piece), tag, None))
                pieces.append(piece)
                offset += len(piece)
            pause = np.zeros(int(rng.uniform(0.4, 1.2) * SAMPLE_RATE), dtype=np.float32)
            start, end = voiced_span(wave)
            pieces += [pause, wave]
            offset += len(pause)
            segments.append((offset + start, offset + end, to_text_tn(text), text))
            offset += len(wave)
        audio = add_noise(np.concatenate([*pieces, np.zeros(SAMPLE_RATE // 2, np.float32)]), noise)
        write_opus(root / rel, audio)
        expected += [
            {"id": f"{aid}_S{s:07d}", "speaker": aid, "subsets": subsets, "sentence": text}
            for s, (*_, text) in enumerate(segments)
        ]
        audios.append(
            {
                "title": f"Sample podcast {f + 1}",
                "url": "",
                "path": rel,
                "aid": aid,
                "source": "podcast",
                "speaker": "N/A",
                "duration": round(len(audio) / SAMPLE_RATE, 4),
                "md5": hashlib.md5((root / rel).read_bytes()).hexdigest(),
                "subsets": subsets,
                "segments": [
                    {
                        "sid": f"{aid}_S{s:07d}",
                        "speaker": "N/A",
                        "begin_time": round(max(0.0, a / SAMPLE_RATE - 0.05), 2),
                        "end_time": round(b / SAMPLE_RATE + 0.05, 2),
                        "text_tn": text,
                        "subsets": subsets,
                    }
                    for s, (a, b, text, _) in enumerate(segments)
                ],
            }
        )
    meta = {"dataset": "GigaSpeech", "language": "EN", "version": "sample", "audios": audios}
    (root / "GigaSpeech.json").write_text(json.dumps(meta, indent=1))
    return expected

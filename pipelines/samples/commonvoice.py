"""A small Common Voice ``en``: 48 kHz MP3 clips and v13 TSVs; several speakers per sentence."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.samples.speech import add_noise, speak_all, write_mp3
from speechinstruct.tts import voice

VOICES = ("slt", "rms", "kal16", "en-m1", "en-f4")
COLUMNS = (
    "client_id",
    "path",
    "sentence",
    "up_votes",
    "down_votes",
    "age",
    "gender",
    "accents",
    "variant",
    "locale",
    "segment",
)
SPLIT_SHARES = (("train", 0.7), ("dev", 0.15), ("test", 0.15))


def write(out: Path, sentences: Iterator[str], utterances: int, seed: int) -> list[dict]:
    """Write the corpus; returns per clip its id, speaker, text and split."""
    rng = random.Random(f"{seed}-commonvoice")
    noise = np.random.default_rng(seed + 2)
    root = out / "cv-corpus" / "en"
    pool = list(itertools.islice(sentences, max(3, utterances // 2)))
    pool[0] = '"' + pool[0]  # real sentences carry unbalanced quotes: read with QUOTE_NONE
    clips: list[tuple[str, str, str]] = []  # voice, sentence, clip name
    number = rng.randrange(10_000_000, 30_000_000)
    readers = {s: rng.sample(VOICES, 2 + (i % 2)) for i, s in enumerate(pool)}
    while len(clips) < utterances:
        sentence = pool[len(clips) % len(pool)]
        name = readers[sentence][(len(clips) // len(pool)) % len(readers[sentence])]
        number += rng.randrange(1, 500)
        clips.append((name, sentence, f"common_voice_en_{number}.mp3"))
    waves = speak_all([(s.strip('"'), voice(v)) for v, s, _ in clips])
    for (_, _, clip), wave in zip(clips, waves, strict=True):
        write_mp3(root / "clips" / clip, add_noise(wave, noise))
    rows = {clip: _row(voice(v), s, clip, seed) for v, s, clip in clips}
    order = list(pool)
    rng.shuffle(order)
    bounds, start = {}, 0
    for split, share in SPLIT_SHARES:
        end = len(order) if split == "test" else start + round(share * len(order))
        bounds[split] = set(order[start:end])
        start = end
    _write_tsv(root / "validated.tsv", [rows[c] for _, _, c in clips])
    for split, members in bounds.items():
        _write_tsv(root / f"{split}.tsv", [rows[c] for _, s, c in clips if s in members])
    split_of = {s: split for split, members in bounds.items() for s in members}
    return [
        {"id": c.removesuffix(".mp3"), "speaker": rows[c][0], "text": s, "split": split_of[s]}
        for _, s, c in clips
    ]


def _row(v, sentence: str, clip: str, seed: int) -> list[str]:
    client = hashlib.sha512(f"{seed}-{v.name}".encode()).hexdigest()
    return [client, clip, sentence, "2", "0", "twenties", v.gender, v.accent, "", "en", ""]


def _write_tsv(path: Path, rows: list[list[str]]) -> None:
    lines = ["\t".join(COLUMNS)] + ["\t".join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")

"""A small LibriSpeech: two splits, FLAC utterances, upper-case ``.trans.txt``, SPEAKERS.TXT."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.samples.speech import add_noise, speak_all, write_flac
from speechinstruct.tts import Voice, voice

SPLITS = {  # split -> (voices, chapters per speaker, share of the utterances)
    "train-clean-100": (("slt", "rms", "awb", "en-us-m3"), 2, 0.75),
    "dev-clean": (("kal16", "en-us-f2"), 1, 0.25),
}


def normalize(sentence: str) -> str:
    """LibriSpeech's text style: upper case, letters and apostrophes only."""
    return " ".join(re.sub(r"[^A-Z' ]", " ", sentence.upper()).split())


def write(out: Path, sentences: Iterator[str], utterances: int, seed: int) -> list[dict]:
    """Write the corpus; returns what a reader should find (id, split, speaker, text)."""
    rng = random.Random(f"{seed}-librispeech")
    noise = np.random.default_rng(seed)
    root = out / "LibriSpeech"
    speaker_ids = rng.sample(range(100, 9000), sum(len(v) for v, _, _ in SPLITS.values()))
    speakers: list[tuple[int, Voice, str]] = []
    plan: list[tuple[str, int, int, Voice]] = []  # split, speaker id, chapter id, voice
    for split, (names, chapters, _) in SPLITS.items():
        for name in names:
            spk = speaker_ids[len(speakers)]
            speakers.append((spk, voice(name), split))
            plan += [
                (split, spk, rng.randrange(10_000, 300_000), voice(name)) for _ in range(chapters)
            ]
    jobs: list[tuple[str, int, int, Voice, str]] = []
    texts = iter(sentences)
    for split, (_, _, share) in SPLITS.items():
        chapters = [p for p in plan if p[0] == split]
        for i in range(max(len(chapters), round(utterances * share))):
            _, spk, chapter, v = chapters[i % len(chapters)]
            jobs.append((split, spk, chapter, v, normalize(next(texts))))
    waves = speak_all([(text, v) for *_, v, text in jobs])
    lines: dict[Path, list[str]] = {}
    expected = []
    counters: dict[tuple[int, int], int] = {}
    for (split, spk, chapter, _, text), wave in zip(jobs, waves, strict=True):
        n = counters[spk, chapter] = counters.get((spk, chapter), -1) + 1
        folder = root / split / str(spk) / str(chapter)
        uid = f"{spk}-{chapter}-{n:04d}"
        write_flac(folder / f"{uid}.flac", add_noise(wave, noise))
        lines.setdefault(folder / f"{spk}-{chapter}.trans.txt", []).append(f"{uid} {text}")
        expected.append({"id": uid, "split": split, "speaker": str(spk), "text": text})
    for path, rows in lines.items():
        path.write_text("\n".join(rows) + "\n")
    header = ";ID  |SEX| SUBSET           |MINUTES| NAME\n"
    rows = [
        f"{spk:<5}| {v.gender[0].upper()} | {split:<17}| {1.0:5.2f} | {v.name}"
        for spk, v, split in speakers
    ]
    (root / "SPEAKERS.TXT").write_text(header + "\n".join(rows) + "\n")
    return expected

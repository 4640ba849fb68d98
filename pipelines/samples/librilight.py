"""A small LibriLight ``small`` subset: chapter-long FLAC files + VAD JSON from real pauses."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from pipelines.samples.speech import add_noise, speak_all, voiced_span, write_flac
from schemas import SAMPLE_RATE
from speechinstruct.tts import voice

BOOKS = (  # voice, book title slug, author slug
    ("awb", "windmill_stories", "hale"),
    ("slt", "river_journeys", "moore"),
)
SENTENCES_PER_FILE = 40  # ≈ 2.3 minutes per file with pauses


def write(out: Path, sentences: Iterator[str], seed: int) -> list[dict]:
    """Write the corpus; returns per file its stem, speaker and voiced slices."""
    rng = random.Random(f"{seed}-librilight")
    noise = np.random.default_rng(seed + 1)
    root = out / "librilight" / "small"
    texts = iter(sentences)
    expected = []
    for i, (name, title, author) in enumerate(BOOKS):
        speaker, book_id = rng.randrange(100, 9000), rng.randrange(1000, 9999)
        folder = root / str(speaker) / f"{title}_{book_id:04d}_librivox_64kb_mp3"
        stem = f"{i + 1:02d}_{author}_{title}_64kb"
        chunk = [next(texts) for _ in range(SENTENCES_PER_FILE)]
        waves = speak_all([(t, voice(name)) for t in chunk])
        pieces, activity, offset = [], [], 0
        for wave in waves:
            pause = np.zeros(int(rng.uniform(0.3, 1.5) * SAMPLE_RATE), dtype=np.float32)
            start, end = voiced_span(wave)
            pieces += [pause, wave]
            offset += len(pause)
            activity.append(
                [round((offset + start) / SAMPLE_RATE, 3), round((offset + end) / SAMPLE_RATE, 3)]
            )
            offset += len(wave)
        pieces.append(np.zeros(SAMPLE_RATE, dtype=np.float32))
        audio = add_noise(np.concatenate(pieces), noise)
        write_flac(folder / f"{stem}.flac", audio)
        meta = {
            "speaker": str(speaker),
            "book_meta": {
                "id": str(book_id),
                "title": title.replace("_", " ").title(),
                "authors": [{"last_name": author.title()}],
                "language": "English",
                "genre": ["Fiction"],
            },
            "snr": round(float(10 * np.log10(np.mean(audio**2) / 1e-7)), 2),
            "voice_activity": activity,
        }
        (folder / f"{stem}.json").write_text(json.dumps(meta, indent=1))
        expected.append({"stem": stem, "speaker": str(speaker), "slices": activity})
    return expected

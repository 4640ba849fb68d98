"""``speechgpt eval-speech`` with the tiny stage-3 model, MFCC units and the baseline
vocoder, on real TTS speech from the sample corpora, heard by the real pocketsphinx.

What pocketsphinx is given is recorded (it still hears it): each kind of speech must be
the wave this test makes the same way, and each WER the word errors of what it heard."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from schemas import SAMPLE_RATE
from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from speechinstruct.t2u.model import normalize_text
from speechinstruct.units import reduce
from training import eval_speech, report
from training.generate import Talker, load_wave
from vocoder import load_vocoder
from vocoder.data import read_clips

KINDS = ("original", "resynthesized", "resynthesized_predicted_durations", "model")


def _listen(monkeypatch) -> list[tuple[np.ndarray, str]]:
    """From now on, each ``(wave, text)`` that eval-speech's Transcriber hears."""
    heard = []
    transcribe = eval_speech.Transcriber.__call__

    def recorded(self, wave):
        heard.append((np.array(wave), transcribe(self, wave)))
        return heard[-1][1]

    monkeypatch.setattr(eval_speech.Transcriber, "__call__", recorded)
    return heard


def _text_of(heard: list, wave: np.ndarray) -> str:
    """What pocketsphinx heard of exactly ``wave`` (it must have been given it)."""
    texts = [t for w, t in heard if w.shape == wave.shape and np.array_equal(w, wave)]
    assert texts, f"pocketsphinx was not given this {len(wave)}-sample wave"
    return texts[0]


def _errors(ref: list[str], hyp: list[str]) -> int:
    """Word edits (substitutions, deletions, insertions) from ``ref`` to ``hyp``."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        diagonal, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            diagonal, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, diagonal + (r != h))
    return row[-1]


def _wer(refs: list[str], hyps: list[str]) -> float:
    """Word errors over all samples / reference words over all samples."""
    refs = [normalize_text(r).split() for r in refs]
    errors = sum(_errors(r, normalize_text(h).split()) for r, h in zip(refs, hyps, strict=True))
    return errors / sum(map(len, refs))


def _held_out_ids(unit_dirs: list[str], n: int) -> list[str]:
    """The first ``n`` ids with text whose sha256 puts them in the stable held-out 10 %."""
    ids = []
    for folder in unit_dirs:
        for shard in Path(folder, "units").glob("*.parquet"):
            rows = pq.read_table(shard, columns=["id", "text"]).to_pylist()
            ids += [r["id"] for r in rows if r["text"]]
    share = [i for i in ids if int(hashlib.sha256(i.encode()).hexdigest()[:8], 16) < 0.1 * 16**8]
    return sorted(share)[:n]


def test_eval_speech_scores_the_vocoders_and_the_models_speech(
    stages, made, baseline_vocoder, tmp_path, monkeypatch
):
    """``--units --heldout``: (a) the recorded audio, (b) the vocoder's speech of the
    clip's units (with their durations, and with the vocoder's own), (c) the vocoder's
    speech of the units the model said the reference text with."""
    heard = _listen(monkeypatch)
    drawn = []  # (original, resynthesized) of each mel PNG
    compare = report.mel_comparison

    def recorded(original, resynthesized, *rest):
        drawn.append((original, resynthesized))
        compare(original, resynthesized, *rest)

    monkeypatch.setattr(report, "mel_comparison", recorded)
    spoken = {}  # text: (units, wave) the model said it with
    speak = Talker.speak

    def said(self, text):
        spoken[text] = speak(self, text)
        return spoken[text]

    monkeypatch.setattr(Talker, "speak", said)
    got = eval_speech.run(
        [
            "--units",
            *made["units"],
            "--heldout",
            "--vocoder",
            baseline_vocoder,
            "--model",
            stages[2],
            "--lora",
            stages[3],
            "--max-samples",
            "2",
            "--output",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "eval_speech.json").read_text())
    assert saved["wer"] == got["wer"] and saved["samples"] == 2 and set(got["wer"]) == set(KINDS)
    ids = _held_out_ids(made["units"], 2)
    assert [e["id"] for e in got["examples"]] == ids

    clips = {c.id: c for c in read_clips(made["units"])[0] if c.id in ids}
    vocoder = load_vocoder(baseline_vocoder)
    assert set(spoken) == {c.text for c in clips.values()}  # (c) speaks each reference
    for example, (original, resynthesized) in zip(got["examples"], drawn, strict=True):
        clip = clips[example["id"]]
        assert example["reference"] == clip.text
        units, speech = spoken[clip.text]
        waves = {
            "original": clip.audio(),
            "resynthesized": vocoder.synthesize(clip.units, clip.durations),
            "resynthesized_predicted_durations": vocoder.synthesize(clip.units),
            "model": vocoder.synthesize(units),
        }
        np.testing.assert_array_equal(speech, waves["model"])
        for kind, wave in waves.items():
            assert example[kind] == _text_of(heard, wave), kind
        np.testing.assert_array_equal(original, waves["original"])
        np.testing.assert_array_equal(resynthesized, waves["resynthesized"])
    assert len(heard) == 4 * 2
    refs = [e["reference"] for e in got["examples"]]
    assert got["wer"] == pytest.approx(
        {kind: _wer(refs, [e[kind] for e in got["examples"]]) for kind in KINDS}
    )
    assert got["wer"]["original"] < 0.5  # real TTS speech: pocketsphinx hears most words
    pngs = sorted(Path(tmp_path, "mels").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(ids)
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)


def test_eval_speech_on_an_audio_folder_with_known_transcripts(
    made, baseline_vocoder, tmp_path, monkeypatch, capsys
):
    """``--audio-dir``: two wavs, one with what pocketsphinx hears as its transcript (no
    error), one with its first word wrong and a word more (two errors); a wav with no
    transcript beside it is skipped. Units come from ``--kmeans``."""
    folder = tmp_path / "audio"
    folder.mkdir()
    clips = [c for c in read_clips(made["units"][:1])[0] if c.text][:3]
    for clip in clips:
        sf.write(folder / f"{clip.id}.wav", clip.audio(), SAMPLE_RATE)
    waves = [load_wave(folder / f"{clip.id}.wav") for clip in clips[:2]]
    first, second = (normalize_text(eval_speech.Transcriber()(w)).split() for w in waves)
    assert len(first) >= 1 and len(second) >= 2, (first, second)
    transcripts = [" ".join(first), " ".join(["zebra", *second[1:], "again"])]
    for clip, transcript in zip(clips[:2], transcripts, strict=True):
        (folder / f"{clip.id}.txt").write_text(transcript + "\n")

    heard = _listen(monkeypatch)
    got = eval_speech.run(
        [
            "--audio-dir",
            str(folder),
            "--kmeans",
            made["km"],
            "--vocoder",
            baseline_vocoder,
            "--output",
            str(tmp_path / "out"),
        ]
    )
    assert [e["id"] for e in got["examples"]] == [c.id for c in clips[:2]]
    assert f"skipping {folder / clips[2].id}.wav (no {clips[2].id}.txt" in capsys.readouterr().out
    assert [e["reference"] for e in got["examples"]] == transcripts
    assert got["wer"]["original"] == pytest.approx(2 / (len(first) + len(second) + 1))

    vocoder = load_vocoder(baseline_vocoder)
    extractor = UnitExtractor(ExtractorSpec("mfcc"), made["km"])
    for example, wave in zip(got["examples"], waves, strict=True):
        units, durations = reduce(extractor([wave])[0])
        assert example["original"] == _text_of(heard, wave)
        assert example["resynthesized"] == _text_of(heard, vocoder.synthesize(units, durations))
        predicted = vocoder.synthesize(units)
        assert example["resynthesized_predicted_durations"] == _text_of(heard, predicted)
    assert len(heard) == 3 * 2
    assert got["wer"] == pytest.approx(
        {kind: _wer(transcripts, [e[kind] for e in got["examples"]]) for kind in KINDS[:3]}
    )

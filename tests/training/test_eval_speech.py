"""``speechgpt eval-speech`` with the tiny stage-3 model, MFCC units and the baseline
vocoder, on real TTS speech from the sample corpora."""

import json
from pathlib import Path

from training import eval_speech


def test_eval_speech_scores_original_resynthesis_and_model(
    stages, made, baseline_vocoder, tmp_path
):
    report = eval_speech.run(
        [
            "--units",
            *made["units"],
            "--vocoder",
            baseline_vocoder,
            "--model",
            stages[2],
            "--lora",
            stages[3],
            "--max-samples",
            "3",
            "--output",
            str(tmp_path),
        ]
    )
    saved = json.loads((tmp_path / "eval_speech.json").read_text())
    assert saved["wer"] == report["wer"] and saved["samples"] == 3
    wer = report["wer"]
    assert set(wer) == {"original", "resynthesized", "resynthesized_predicted_durations", "model"}
    assert wer["original"] < 0.5  # real TTS speech: pocketsphinx hears most words
    assert all(w >= 0 for w in wer.values())
    pngs = sorted(Path(tmp_path, "mels").glob("*.png"))
    assert [p.stem for p in pngs] == sorted(e["id"] for e in report["examples"])
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

"""The fast baseline vocoder and ``speechgpt vocode`` on the sample corpora's units."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from vocoder import HOP, load_vocoder, vocode
from vocoder.baseline import BaselineVocoder, log_mel
from vocoder.data import held_out, read_clips


@pytest.fixture(scope="module")
def clips(made):
    return read_clips(made["units"])[0]


def test_fit_records_what_it_saw(baseline_vocoder, clips):
    config = json.loads(Path(baseline_vocoder, "config.json").read_text())
    trained = [c for c in clips if not held_out(c.id)]
    assert config["vocoder"] == "baseline" and config["num_embeddings"] == 16
    assert config["clips"] == len(trained)
    heard = set(np.concatenate([c.units for c in trained]).tolist())
    assert config["units_heard"] == len(heard)
    assert isinstance(load_vocoder(baseline_vocoder), BaselineVocoder)


def test_lengths_follow_durations(baseline_vocoder, clips):
    voc = load_vocoder(baseline_vocoder)
    clip = clips[0]
    wave = voc.synthesize(clip.units, clip.durations)
    assert wave.dtype == np.float32 and len(wave) == clip.durations.sum() * HOP
    predicted = np.maximum(1, np.rint(voc.durations[clip.units])).astype(int)
    assert len(voc.synthesize(clip.units)) == predicted.sum() * HOP
    assert np.array_equal(wave, voc.synthesize(clip.units, clip.durations))  # deterministic
    assert voc.synthesize([]).size == 0


def test_resynthesis_is_closer_to_the_original_than_other_units(baseline_vocoder, clips):
    """The units carry the speech: resynthesis beats the same durations with shuffled units."""
    voc = load_vocoder(baseline_vocoder)
    rng = np.random.default_rng(0)
    wins = 0
    chosen = [c for c in clips if held_out(c.id)][:4]
    assert chosen
    for clip in chosen:
        original = log_mel(clip.audio())
        right = log_mel(voc.synthesize(clip.units, clip.durations))
        wrong = log_mel(voc.synthesize(rng.permutation(clip.units), clip.durations))
        wins += np.abs(right - original).mean() < np.abs(wrong - original).mean()
    assert wins == len(chosen)


def test_bad_input_is_refused_clearly(baseline_vocoder, tmp_path):
    voc = load_vocoder(baseline_vocoder)
    with pytest.raises(ValueError, match=r"unit ids must lie in \[0, 16\)"):
        voc.synthesize([3, 16])
    with pytest.raises(ValueError, match="one \\(averaged\\) voice"):
        voc.synthesize([3], speaker=1)
    with pytest.raises(FileNotFoundError, match=r"no config\.json"):
        load_vocoder(tmp_path)


@pytest.mark.parametrize("text", ["<sosp><1><2><2><5><eosp>", "<1><2><2><5>", "1 2 2 5", "1,2,2,5"])
def test_vocode_reads_every_unit_form(text):
    assert vocode.parse(text) == [1, 2, 2, 5]


def test_vocode_writes_the_wav(baseline_vocoder, tmp_path, capsys):
    units = tmp_path / "units.txt"
    units.write_text("<sosp><1><2><3><eosp>\n")
    out = vocode.run(
        [
            "--vocoder",
            baseline_vocoder,
            "--units",
            str(units),
            "--frames",
            "--out",
            str(tmp_path / "a.wav"),
        ]
    )
    wave, sr = sf.read(out)
    assert sr == 16000 and len(wave) == 3 * HOP
    assert "3 units -> 3 frames" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        vocode.run(["--vocoder", baseline_vocoder, "--units", "<sosp>oops", "--out", "x.wav"])

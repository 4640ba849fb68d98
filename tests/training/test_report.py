"""The pictures training and eval-speech write."""

import numpy as np
import pytest
import soundfile as sf

from tests.pipelines.test_plots import _assert_picture
from training.report import mel_comparison


def test_mel_comparison_of_a_real_wave_and_a_noisy_copy(sample, tmp_path):
    wave, sr = sf.read(sorted((sample["root"] / "LibriSpeech").rglob("*.flac"))[0], dtype="float32")
    noisy = wave + 0.05 * np.random.default_rng(0).standard_normal(len(wave)).astype("float32")
    path = tmp_path / "mel" / "compare.png"
    mel_comparison(wave, noisy, sr, path, "original vs noisy copy")
    _assert_picture(path)
    with pytest.raises(ValueError, match="resynthesized"):
        mel_comparison(wave, np.zeros(0), sr, tmp_path / "x.png", "empty")

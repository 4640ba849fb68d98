from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines import audio
from pipelines.audio import AudioLimits, BadSegment, DecodeError, MissingAudio, check, load
from pipelines.records import AudioSource, Reject, Utterance
from pipelines.samples.speech import write_flac, write_mp3, write_opus
from speechinstruct.tts import speak, voice


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> tuple[Path, np.ndarray]:
    """A real flite utterance as a 16 kHz WAV, and its samples."""
    wave, sr = speak("The quick brown fox jumps over the lazy dog near the river.", voice("rms"))
    assert sr == 16_000
    path = tmp_path_factory.mktemp("audio") / "source.wav"
    sf.write(path, wave, sr, subtype="FLOAT")
    return path, wave


@pytest.mark.parametrize(
    ("writer", "ext", "min_corr"),
    [(write_flac, "flac", 0.999), (write_mp3, "mp3", 0.95), (write_opus, "opus", 0.95)],
)
def test_decode_parity_with_source_wav(speech, tmp_path, writer, ext, min_corr):
    path, wave = speech
    writer(tmp_path / f"x.{ext}", wave)
    decoded = load(str(tmp_path / f"x.{ext}"))
    wave = load(str(path))  # the source WAV, read the same way
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert abs(len(decoded) - len(wave)) <= 0.01 * len(wave)
    n = min(len(decoded), len(wave))
    assert np.corrcoef(decoded[:n], wave[:n])[0, 1] > min_corr


def test_mp3_is_stored_at_48k_and_read_back_at_16k(speech, tmp_path):
    write_mp3(tmp_path / "x.mp3", speech[1])
    assert sf.info(tmp_path / "x.mp3").samplerate == 48_000
    assert abs(len(load(str(tmp_path / "x.mp3"))) - len(speech[1])) <= 160


def test_segment_equals_slice_of_whole(speech, tmp_path):
    write_flac(tmp_path / "x.flac", speech[1])
    whole = load(str(tmp_path / "x.flac"))
    part = load(str(tmp_path / "x.flac"), 0.5, 1.25)
    np.testing.assert_array_equal(part, whole[8000:20000])


def test_stereo_44k_is_downmixed_and_resampled(tmp_path):
    t = np.arange(44_100) / 44_100
    left, right = np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1) * 0.5, 44_100)
    out = load(str(tmp_path / "s.wav"))
    assert len(out) == 16_000
    expected = (left + right)[::441][:100] * 0.25
    assert np.abs(out[::160][:100] - expected).max() < 0.05


def test_errors_are_typed(tmp_path, speech):
    with pytest.raises(MissingAudio):
        load(str(tmp_path / "nope.flac"))
    (tmp_path / "junk.flac").write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(DecodeError):
        load(str(tmp_path / "junk.flac"))
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(DecodeError):
        load(str(tmp_path / "empty.wav"))
    sf.write(tmp_path / "nan.wav", np.array([0.1, np.nan, 0.2] * 1000), 16_000, subtype="FLOAT")
    with pytest.raises(DecodeError, match="non-finite"):
        load(str(tmp_path / "nan.wav"))
    with pytest.raises(BadSegment):
        load(str(speech[0]), 2.0, 1.0)
    with pytest.raises(BadSegment):
        load(str(speech[0]), 1.0, 60.0)
    with pytest.raises(BadSegment):
        load(str(speech[0]), 60.0, 61.0)


def test_truncated_flac_is_a_decode_error(speech, tmp_path):
    write_flac(tmp_path / "x.flac", speech[1])
    data = (tmp_path / "x.flac").read_bytes()
    (tmp_path / "cut.flac").write_bytes(data[: len(data) // 3])
    with pytest.raises(DecodeError):
        load(str(tmp_path / "cut.flac"))


def test_check_limits():
    limits = AudioLimits(min_s=0.5, max_s=2.0, silence_dbfs=-55)
    rng = np.random.default_rng(0)
    speechlike = (rng.standard_normal(16_000) * 0.1).astype(np.float32)
    assert check(speechlike, limits) is None
    assert check(speechlike[:4000], limits)[0] == "too_short"
    assert check(np.tile(speechlike, 3), limits)[0] == "too_long"
    assert check(speechlike * 1e-4, limits)[0] == "silent"


def test_decode_returns_reject_instead_of_raising(tmp_path):
    utt = Utterance("u1", "manifest", "train", "s", None, AudioSource(str(tmp_path / "x.wav")))
    out = audio.decode(utt)
    assert isinstance(out, Reject)
    assert (out.reason, out.stage, out.id) == ("missing_audio", "decode", "u1")

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
    """A real flite utterance as a 16 kHz WAV, and its samples (zero mean: Opus's encoder
    rejects DC, which is no fault of the decoder)."""
    wave, sr = speak("The quick brown fox jumps over the lazy dog near the river.", voice("rms"))
    assert sr == 16_000
    wave = (wave - wave.mean()).astype(np.float32)
    path = tmp_path_factory.mktemp("audio") / "source.wav"
    sf.write(path, wave, sr, subtype="FLOAT")
    return path, wave


def test_flac_decodes_to_the_int16_samples_written(speech, tmp_path):
    """16-bit PCM is int / 32768 exactly, by libsndfile and by the ffmpeg fallback."""
    pcm = np.round(speech[1] * 32767).astype(np.int16)
    pcm[:4] = [-32768, 32767, 1, -1]  # full scale both ways and one LSB
    write_flac(tmp_path / "x.flac", pcm)  # int16 in, so the file holds exactly these samples
    expected = pcm.astype(np.float32) / 32768
    decoded = load(str(tmp_path / "x.flac"))
    assert decoded.dtype == np.float32 and decoded.shape == expected.shape
    np.testing.assert_array_equal(decoded, expected)
    fallback, sr = audio._read_ffmpeg(str(tmp_path / "x.flac"), None, None)
    assert sr == 16_000
    np.testing.assert_array_equal(fallback, expected)


def aligned(decoded: np.ndarray, wave: np.ndarray, max_lag: int = 800) -> tuple[int, np.ndarray]:
    """The lag (|lag| ≤ ``max_lag``) at which ``decoded`` best matches ``wave`` by
    cross-correlation, and ``decoded`` shifted by it to ``wave``'s length (zeros outside)."""
    n = len(decoded) + len(wave)
    xcorr = np.fft.irfft(np.fft.rfft(decoded, n) * np.conj(np.fft.rfft(wave, n)), n)
    lags = np.r_[0 : max_lag + 1, -max_lag:0]
    lag = int(lags[np.argmax(xcorr[lags])])
    shifted = np.zeros(len(wave))
    src = decoded[max(lag, 0) :]
    dst = max(-lag, 0)
    m = min(len(src), len(wave) - dst)
    shifted[dst : dst + m] = src[:m]
    return lag, shifted


@pytest.mark.parametrize(
    ("writer", "ext", "min_snr_db", "max_gain_error"),
    # measured: MP3 33.8 dB, gain 0.9997; Opus (24 kb/s) 19.8 dB, gain 0.983
    [(write_mp3, "mp3", 28.0, 0.005), (write_opus, "opus", 16.0, 0.03)],
)
def test_lossy_decode_keeps_level_and_timing(
    speech, tmp_path, writer, ext, min_snr_db, max_gain_error
):
    wave = speech[1].astype(np.float64)
    writer(tmp_path / f"x.{ext}", speech[1])
    decoded = load(str(tmp_path / f"x.{ext}"))
    assert decoded.dtype == np.float32 and decoded.ndim == 1
    assert len(decoded) == len(wave)
    lag, d = aligned(decoded.astype(np.float64), wave)
    assert abs(lag) <= 16  # 1 ms: decoders drop the encoder's delay
    snr = 10 * np.log10(np.sum(wave**2) / np.sum((d - wave) ** 2))
    assert snr > min_snr_db
    gain = d @ wave / (wave @ wave)  # least-squares level of the decoded against the written
    assert abs(gain - 1) < max_gain_error


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

"""MFCC + Δ + ΔΔ against a reference written here in numpy from the definitions."""

import numpy as np
import pytest

from speechinstruct.extractors.mfcc import MfccFeatures

SR, HOP, WINDOW, N_FFT, N_MELS, N_MFCC = 16_000, 320, 400, 512, 23, 13
TOP_DB, AMIN, DELTA_WIDTH = 80.0, 1e-10, 9


def hubert_frames(samples: int) -> int:
    """Frames of HuBERT's conv stack (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2)."""
    n = samples
    for kernel, stride in [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2:
        n = (n - kernel) // stride + 1
    return n


def htk_mel(hz: np.ndarray) -> np.ndarray:
    return 2595 * np.log10(1 + hz / 700)


def htk_hz(mel: np.ndarray) -> np.ndarray:
    return 700 * (10 ** (mel / 2595) - 1)


def mel_filterbank() -> np.ndarray:
    """(N_MELS, bins) triangles evenly spaced on the HTK mel scale over 0..SR/2, each scaled
    to unit area in Hz (Slaney's normalization)."""
    edges = htk_hz(np.linspace(htk_mel(0), htk_mel(SR / 2), N_MELS + 2))
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    hz = np.arange(N_FFT // 2 + 1) * SR / N_FFT
    rising, falling = (hz - lo) / (mid - lo), (hi - hz) / (hi - mid)
    return np.maximum(0, np.minimum(rising, falling)) * 2 / (hi - lo)


def dct2_ortho(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) orthonormal DCT-II matrix."""
    j = np.arange(n_in)
    basis = np.cos(np.pi * np.arange(n_out)[:, None] * (2 * j + 1) / (2 * n_in))
    scale = np.full((n_out, 1), np.sqrt(2 / n_in))
    scale[0] = np.sqrt(1 / n_in)
    return basis * scale


def regression(c: np.ndarray, half: int, order: int) -> np.ndarray:
    """Slope (order 1) or second derivative (order 2) of the least-squares line / parabola
    through frames t-half..t+half of ``c`` (frames, dims), edge frames repeated."""
    k = np.arange(-half, half + 1)
    if order == 1:
        weights = k / np.sum(k**2)  # Σ k·(c[t+k] − c[t−k]) / 2Σk²
    else:
        centred = k**2 - np.mean(k**2)  # the quadratic orthogonal to 1 and k
        weights = 2 * centred / np.sum(centred**2)
    padded = np.concatenate([np.repeat(c[:1], half, 0), c, np.repeat(c[-1:], half, 0)])
    return sum(w * padded[i : i + len(c)] for i, w in enumerate(weights))


def reference_mfcc(wave: np.ndarray) -> np.ndarray:
    """(frames, 39) in float64: frame t is the 512-point FFT of samples 320t…320t+511 with a
    periodic 400-point Hann window centred in it; power → mel → dB (floor 1e-10, clipped at
    80 dB below the utterance's loudest band) → DCT-II → 13 coefficients, then Δ and ΔΔ by
    regression over 9 frames (fewer, odd, for short utterances; none below 3)."""
    x = np.asarray(wave, np.float64)
    n = 1 + max(0, len(x) - WINDOW) // HOP
    x = np.pad(x, (0, N_FFT))
    window = np.zeros(N_FFT)
    left = (N_FFT - WINDOW) // 2
    window[left : left + WINDOW] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(WINDOW) / WINDOW)
    frames = np.stack([x[t * HOP : t * HOP + N_FFT] for t in range(n)]) * window
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    db = 10 * np.log10(np.maximum(power @ mel_filterbank().T, AMIN))
    db = np.maximum(db, db.max() - TOP_DB)
    c = db @ dct2_ortho(N_MELS, N_MFCC).T
    width = min(DELTA_WIDTH, n if n % 2 else n - 1)
    if width < 3:
        return np.concatenate([c, np.zeros_like(c), np.zeros_like(c)], axis=1)
    return np.concatenate([c, regression(c, width // 2, 1), regression(c, width // 2, 2)], axis=1)


def test_frames_line_up_with_hubert_at_50hz():
    m = MfccFeatures()
    rng = np.random.default_rng(0)
    for samples in (400, 1000, 16_000, 16_321, 48_000):
        feats = m.features([rng.standard_normal(samples).astype(np.float32)])[0]
        assert feats.shape == (hubert_frames(samples), 39)
        assert feats.dtype == np.float32 and np.isfinite(feats).all()


def speechlike(seed: int = 1) -> np.ndarray:
    """Noise, digital silence (which the 80 dB floor clips), then a tone: 1.3 s."""
    rng = np.random.default_rng(seed)
    tone = 0.3 * np.sin(2 * np.pi * 440 * np.arange(8_321) / SR)
    return np.concatenate([rng.standard_normal(8_000) * 0.1, np.zeros(4_000), tone]).astype(
        np.float32
    )


@pytest.mark.parametrize(
    "samples",
    [
        20_321,  # 63 frames, full 9-frame deltas
        2_700,  # 8 frames: 7-frame deltas
        1_100,  # 3 frames: 3-frame deltas
        1_000,  # 2 frames: no deltas
        399,  # shorter than a window: one frame
    ],
)
def test_all_39_columns_match_numpy_reference(samples):
    wave = speechlike()[:samples]
    ours = MfccFeatures().features([wave])[0]
    ref = reference_mfcc(wave)
    assert ours.shape == ref.shape == (1 + max(0, samples - WINDOW) // HOP, 39)
    # librosa works in float32: measured within 5e-5 of float64 for values up to 340
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-4)
    if samples == 20_321:
        # Δ and ΔΔ are compared, not near-zeros against zeros
        assert (
            np.abs(ref[:, N_MFCC : 2 * N_MFCC]).max() > 1 and np.abs(ref[:, 2 * N_MFCC :]).max() > 1
        )


def test_white_noise_matches_numpy_reference():
    wave = np.random.default_rng(2).standard_normal(16_000).astype(np.float32)
    np.testing.assert_allclose(
        MfccFeatures().features([wave])[0], reference_mfcc(wave), rtol=1e-5, atol=1e-4
    )

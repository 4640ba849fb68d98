import librosa
import numpy as np

from speechinstruct.extractors.mfcc import MfccFeatures


def hubert_frames(samples: int) -> int:
    """Frames of HuBERT's conv stack (kernels 10,3,3,3,3,2,2; strides 5,2,2,2,2,2,2)."""
    n = samples
    for kernel, stride in [(10, 5)] + [(3, 2)] * 4 + [(2, 2)] * 2:
        n = (n - kernel) // stride + 1
    return n


def test_frames_line_up_with_hubert_at_50hz():
    m = MfccFeatures()
    rng = np.random.default_rng(0)
    for samples in (400, 1000, 16_000, 16_321, 48_000):
        feats = m.features([rng.standard_normal(samples).astype(np.float32)])[0]
        assert feats.shape == (hubert_frames(samples), 39)
        assert feats.dtype == np.float32 and np.isfinite(feats).all()


def test_static_coefficients_match_librosa_reference():
    rng = np.random.default_rng(1)
    wave = rng.standard_normal(16_000).astype(np.float32)
    ours = MfccFeatures().features([wave])[0]
    ref = librosa.feature.mfcc(
        y=np.pad(wave, (0, 112)),
        sr=16_000,
        n_mfcc=13,
        n_fft=512,
        win_length=400,
        hop_length=320,
        center=False,
        n_mels=23,
        htk=True,
    )
    np.testing.assert_allclose(ours[:, :13], ref.T[: len(ours)], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(
        ours[:, 13:26],
        librosa.feature.delta(ref[:, : len(ours)], width=9, mode="nearest").T,
        rtol=1e-5,
        atol=1e-4,
    )

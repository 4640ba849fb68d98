"""MFCC + Δ + ΔΔ at 50 Hz: the weight-free extractor, in the spirit of HuBERT's first
iteration (MFCC targets).

fairseq's ``dump_mfcc_feature.py`` takes torchaudio's Kaldi MFCC at 100 Hz with 5-frame
deltas; here the frames are the units' own (window 400, hop 320 samples at 16 kHz, so
``1 + (samples - 400) // 320`` frames, as many as HuBERT's layer outputs), computed by
librosa: Hann window in a 512-point FFT, 23 HTK-scale mel bands (slaney-normalized), the
dB log (floor 80 dB under the peak), 13 coefficients, and Δ/ΔΔ by librosa's 9-frame
Savitzky-Golay derivative (narrower for clips under 9 frames; zero under 3), edges
repeated. 39 dimensions per frame. ``tests/speechinstruct/test_mfcc.py`` recomputes all
of them in numpy.
"""

from __future__ import annotations

import librosa
import numpy as np
from threadpoolctl import ThreadpoolController

from schemas import HOP, SAMPLE_RATE

WINDOW, N_FFT, N_MFCC = 400, 512, 13


class MfccFeatures:
    name = "mfcc"
    layer = None
    dim = 3 * N_MFCC

    def frames(self, num_samples: int) -> int:
        return 1 + max(0, num_samples - WINDOW) // HOP

    def __init__(self):
        self.blas = ThreadpoolController()

    def features(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        # librosa's mel step is a tiny product on a column-ordered array: multithreaded
        # OpenBLAS spends far more on its threads than on the product (3x slower end to end
        # on a busy machine, benchmarks/RESULTS.md "Scale").
        with self.blas.limit(limits=1, user_api="blas"):
            return [self._one(w) for w in waves]

    def _one(self, wave: np.ndarray) -> np.ndarray:
        n = self.frames(len(wave))
        # pad so there are as many frames as HuBERT's: 1 + (samples - 400) // 320 (librosa
        # centers the 400-sample window in the 512-point frame: 3.5 ms after HuBERT's)
        padded = np.pad(wave.astype(np.float32), (0, max(N_FFT - WINDOW, N_FFT - len(wave))))
        mfcc = librosa.feature.mfcc(
            y=padded,
            sr=SAMPLE_RATE,
            n_mfcc=N_MFCC,
            n_fft=N_FFT,
            win_length=WINDOW,
            hop_length=HOP,
            center=False,
            n_mels=23,
            htk=True,
        )[:, :n]
        width = min(9, n if n % 2 else n - 1)
        if width >= 3:
            d1 = librosa.feature.delta(mfcc, width=width, order=1, mode="nearest")
            d2 = librosa.feature.delta(mfcc, width=width, order=2, mode="nearest")
        else:
            d1 = d2 = np.zeros_like(mfcc)
        return np.concatenate([mfcc, d1, d2]).T.astype(np.float32)

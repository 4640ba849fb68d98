"""MFCC + Δ + ΔΔ at 50 Hz: the weight-free extractor (HuBERT's own first-iteration targets).

Window 400 and hop 320 samples at 16 kHz, 13 coefficients, 39 dimensions per frame, as
fairseq's ``dump_mfcc_feature.py`` (there via torchaudio's Kaldi-compatible MFCC).
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
        # pad so the FFT frames line up with HuBERT's: 1 + (samples - 400) // 320 frames
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

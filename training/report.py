"""What a training run leaves beside its model: ``metrics.jsonl`` and a loss-curve PNG."""

from __future__ import annotations

import json
from pathlib import Path


class Metrics:
    """Appends one JSON object per logged step; on resume, forgets steps past the checkpoint."""

    def __init__(self, folder: Path, resume_step: int = 0):
        self.path = folder / "metrics.jsonl"
        kept = []
        if resume_step and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line and json.loads(line)["step"] <= resume_step
            ]
        self.path.write_text("".join(line + "\n" for line in kept))

    def log(self, **row) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")

    def rows(self) -> list[dict]:
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]


def plot_loss(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=1.5)
    ax.set(xlabel="step", ylabel="training loss", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


MEL = {"n_fft": 1024, "hop_length": 256, "n_mels": 80}
MEL_RANGE_DB = 80.0  # the colour scale spans this far below the louder panel's peak


def mel_comparison(original, resynthesized, sr: int, path: Path, title: str) -> None:
    """Original above resynthesized log-mel spectrogram (80 mels, hop 256), one colour scale.

    Raises:
        ValueError: a wave is empty or not one-dimensional.
    """
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    db = {}
    for name, wave in {"original": original, "resynthesized": resynthesized}.items():
        wave = np.asarray(wave, dtype=np.float32)
        if wave.ndim != 1 or not len(wave):
            raise ValueError(f"{name}: expected a non-empty 1-D wave, got shape {wave.shape}")
        db[name] = librosa.power_to_db(librosa.feature.melspectrogram(y=wave, sr=sr, **MEL))
    top = max(float(d.max()) for d in db.values())
    fig, axes = plt.subplots(
        2, 1, figsize=(8, 5.5), dpi=100, sharex=True, sharey=True, layout="constrained"
    )
    for ax, (name, d) in zip(axes, db.items(), strict=True):
        image = librosa.display.specshow(
            d,
            sr=sr,
            hop_length=MEL["hop_length"],
            x_axis="time",
            y_axis="mel",
            ax=ax,
            cmap="magma",
            vmin=top - MEL_RANGE_DB,
            vmax=top,
        )
        ax.set(title=name, xlabel="")
    axes[-1].set_xlabel("time (s)")
    fig.colorbar(image, ax=axes, format="%+.0f dB")
    fig.suptitle(title[:100])
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)

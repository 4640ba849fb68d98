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
            kept = [line for line in self.path.read_text().splitlines()
                    if line and json.loads(line)["step"] <= resume_step]  # fmt: skip
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


def mel_comparison(original, resynthesized, sr: int, path: Path, title: str) -> None:
    """Two log-mel spectrograms, original over resynthesized, on one colour scale."""
    import librosa
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mels = [librosa.power_to_db(librosa.feature.melspectrogram(y=w, sr=sr, n_mels=80,
                                                               hop_length=256), ref=1.0)
            for w in (original, resynthesized)]  # fmt: skip
    high = max(m.max() for m in mels)
    low = max(min(m.min() for m in mels), high - 80)
    fig, axes = plt.subplots(2, 1, figsize=(8, 4.5), dpi=100, sharex=True)
    for ax, mel, name in zip(axes, mels, ("original", "resynthesized"), strict=True):
        ax.imshow(mel, origin="lower", aspect="auto", vmin=low, vmax=high, cmap="magma",
                  extent=(0, mel.shape[1] * 256 / sr, 0, 80))  # fmt: skip
        ax.set(ylabel=f"{name}\nmel bin")
    axes[-1].set_xlabel("seconds")
    fig.suptitle(title[:90], fontsize=9)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)

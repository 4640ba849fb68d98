"""PNG pictures: the dataset card's (unit lengths, unit frequency, per-corpus counts) and
``eval-speech``'s original-vs-resynthesized log-mel spectrograms.

Data functions read what a picture shows, so tests check the numbers, not the pixels; plot
functions only draw. PNGs carry no matplotlib version stamp: the same input, the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq

from schemas import UNIT_TYPE, schema
from speechinstruct import storage

# Every chain-of-modality format of a chat carries the same speech: count one per chat.
ONE_FORMAT = {"chain_of_modality": ("format", "s2s")}
LOG_Y_ABOVE = 100  # a max/min count ratio past which unit frequency gets a log axis
COUNT_COLOURS = {"kept": "tab:green", "rejected": "tab:red", "duplicates": "tab:gray"}


def unit_columns(config: str) -> list[str]:
    """The unit-sequence columns of a published table, from its schema."""
    return [f.name for f in schema(config) if f.type == UNIT_TYPE]


def shard_files(folder: str | Path, max_files: int | None = None) -> list[str]:
    """The Parquet shards of a table folder (path or URI), at most ``max_files`` of them:
    rows are spread over shards by a hash of their id, so any shards are a fair sample."""
    return storage.match(storage.join(str(folder), "*.parquet"))[:max_files]


def _read(file: str, columns: list[str] | None = None):
    with storage.open_read(file) as f:
        return pq.read_table(f, columns=columns)


def unit_lengths(
    folder: str | Path, config: str, max_files: int | None = None
) -> dict[str, np.ndarray]:
    """Per unit column of ``config``: the sequence lengths over the shards in ``folder``."""
    columns = unit_columns(config)
    lengths: dict[str, list[np.ndarray]] = {c: [] for c in columns}
    for f in shard_files(folder, max_files):
        table = _read(f)
        if config in ONE_FORMAT:
            column, value = ONE_FORMAT[config]
            table = table.filter(pc.equal(table[column], value))
        for c in columns:
            lengths[c].append(pc.list_value_length(table[c]).to_numpy(zero_copy_only=False))
    return {c: np.concatenate(parts) if parts else np.zeros(0, int) for c, parts in lengths.items()}


def unit_frequency(
    folder: str | Path, k: int, column: str = "units", max_files: int | None = None
) -> np.ndarray:
    """How often each unit id ``0..k-1`` occurs in ``column`` over the shards in ``folder``."""
    counts = np.zeros(k, dtype=np.int64)
    for f in shard_files(folder, max_files):
        flat = pc.list_flatten(_read(f, [column])[column])
        counts += np.bincount(flat.to_numpy(zero_copy_only=False).astype(np.int64), minlength=k)
    return counts


def corpus_counts(tokenized: list[dict]) -> dict[str, dict[str, int]]:
    """Per corpus (summed over its tokenize outputs): kept, rejected and duplicate records.

    ``tokenized`` is ``build.json``'s ``tokenize`` list: each output's ``stats.json`` counts.
    """
    table: dict[str, dict[str, int]] = {}
    for stats in tokenized:
        row = table.setdefault(stats["corpus"], dict.fromkeys(COUNT_COLOURS, 0))
        row["kept"] += stats["kept"]
        row["rejected"] += sum(stats["rejected"].values())
        row["duplicates"] += sum(stats["duplicates"].values())
    return dict(sorted(table.items()))


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    _pyplot().close(fig)


def plot_unit_lengths(lengths: Mapping[str, Mapping[str, np.ndarray]], path: Path) -> None:
    """One histogram panel per config, its unit columns overlaid on shared bins."""
    plt = _pyplot()
    ncols = min(2, len(lengths))
    nrows = -(-len(lengths) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5 * ncols, 3 * nrows), dpi=100, squeeze=False)
    for ax, (config, columns) in zip(axes.flat, lengths.items(), strict=False):
        top = max((int(v.max()) for v in columns.values() if len(v)), default=1)
        bins = np.linspace(0, top + 1, min(30, top + 1) + 1)
        for column, values in columns.items():
            ax.hist(values, bins=bins, alpha=0.6, label=f"{column} (n={len(values)})")
        unit = "chats" if config in ONE_FORMAT else "rows"
        ax.set(title=config, xlabel="units per sequence", ylabel=unit)
        ax.yaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(lengths) :]:
        ax.remove()
    fig.suptitle("Unit-sequence lengths (repeated units merged)")
    fig.tight_layout()
    _save(fig, path)


def plot_unit_frequency(counts: np.ndarray, path: Path, title: str) -> None:
    """One bar per unit id; a log count axis when the counts span more than ``LOG_Y_ABOVE``×."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.5), dpi=100)
    ax.bar(np.arange(len(counts)), counts, width=1.0 if len(counts) > 64 else 0.8)
    used = counts[counts > 0]
    if len(used) and used.max() / used.min() > LOG_Y_ABOVE:
        ax.set_yscale("log")
    ax.set(
        xlabel="unit id",
        ylabel="occurrences",
        xlim=(-1, len(counts)),
        title=f"{title} (K = {len(counts)}, {int((counts == 0).sum())} unused)",
    )
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _save(fig, path)


def plot_corpus_counts(table: Mapping[str, Mapping[str, int]], path: Path) -> None:
    """Grouped bars per corpus: records kept, rejected and dropped as duplicates."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(5, 1.6 * len(table) + 2), 3.5), dpi=100)
    x = np.arange(len(table))
    width = 0.8 / len(COUNT_COLOURS)
    for i, (kind, colour) in enumerate(COUNT_COLOURS.items()):
        values = [row[kind] for row in table.values()]
        bars = ax.bar(x + (i - 1) * width, values, width, label=kind, color=colour)
        ax.bar_label(bars, fontsize="small")
    ax.set_xticks(x, list(table))
    ax.set(ylabel="records", title="Tokenize: records per corpus")
    ax.margins(y=0.15)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    _save(fig, path)

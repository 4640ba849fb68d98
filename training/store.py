"""The token store: a stage's samples tokenized once, streaming, into arrays on disk that
every rank reads through ``numpy.memmap`` (as Megatron's ``.bin``/``.idx``).

A store is a folder of ``tokens.bin`` (ids as uint16 when the vocabulary fits, else
uint32), ``offsets.bin`` (int64, one more than the samples), ``loss_mask.bin`` (uint8, one
per token: 1 where the token is a target; stages 2–3) and ``meta.json``, written last. It
lives in ``<cache>/token-stores/`` under a key made of the dataset's fingerprint, the
tokenizer's hash and the stage's settings, so a second run (or another rank) finds it; it
is built in a temporary folder and renamed into place whole.

A stage may mix several data configs with weights (``{cross_modal: 1.0, text_chat: 0.5}``):
a weight is how many times each row of its config is used per epoch; a fraction takes a
subset drawn by the stage's seed. The samples of each config are counted in ``meta.json``.

Rows that cannot be parsed or encoded are skipped and counted by reason; over
``MAX_BAD_SHARE`` of them stops the build with the counts. Samples over ``max_length``
(stages 2–3) are dropped and counted, never cut.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from tqdm import tqdm

from speechinstruct.instructions import PROMPTING
from speechinstruct.templates import CROSS_MODAL, SYSTEM
from training import data as stage_data
from training.released import ReleasedTokenizer
from training.tokens import SpeechTokenizer

VERSION = 2
META = "meta.json"
MAX_BAD_SHARE = 0.01
BATCH_ROWS = 1000
FLUSH_TOKENS = 1 << 22


class TooManyBadRows(ValueError):
    pass


def cache_root() -> Path:
    """``$SPEECHGPT_CACHE`` or ``~/.cache/speechgpt``: on a cluster, a filesystem all nodes see."""
    return Path(os.environ.get("SPEECHGPT_CACHE") or Path.home() / ".cache" / "speechgpt")


def tokenizer_hash(tokenizer) -> str:
    """A hash of everything that decides a tokenizer's ids."""
    h = hashlib.sha256(type(tokenizer).__name__.encode())
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode())
    else:  # a slow (e.g. sentencepiece) tokenizer: its vocabulary and added tokens
        h.update(json.dumps(tokenizer.get_vocab(), sort_keys=True).encode())
    special = {k: str(v) for k, v in tokenizer.special_tokens_map.items()}
    h.update(json.dumps(special, sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass(frozen=True)
class Recipe:
    """What decides a store's contents besides the rows and the tokenizer."""

    stage: int
    data_config: str | tuple[tuple[str, float], ...]  # a config, or (config, weight) pairs
    max_length: int
    system: str = SYSTEM
    style: str = "paper"  # or "released": rows in the released SpeechGPT's format
    seed: int = 0  # draws the rows of a fractional weight
    prompting: str = "com"  # or "standard": chain_of_modality rows in Appendix E's templates

    @property
    def mix(self) -> tuple[tuple[str, float], ...]:
        """``(config, weight)`` pairs."""
        if isinstance(self.data_config, str):
            return ((self.data_config, 1.0),)
        return tuple((str(c), float(w)) for c, w in self.data_config)

    @property
    def label(self) -> str:
        return "+".join(c for c, _ in self.mix)

    def names(self, config: str) -> tuple[str, ...]:
        """The templates the rows of ``config`` are parsed against."""
        return CROSS_MODAL if config == "cross_modal" else PROMPTING[self.prompting]


def store_key(fingerprint: str, tok_hash: str, recipe: Recipe) -> str:
    text = json.dumps([VERSION, fingerprint, tok_hash, recipe.__dict__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


class _Writer:
    """Appends samples to the arrays, a few MB at a time."""

    def __init__(self, folder: Path, dtype, masks: bool):
        self.dtype, self.total = dtype, 0
        names = ("tokens", "offsets", "loss_mask") if masks else ("tokens", "offsets")
        self.files = {n: open(folder / f"{n}.bin", "wb") for n in names}  # noqa: SIM115
        self.pending: list[np.ndarray] = []
        self.masks: list[np.ndarray] = []
        self.offsets = [0]
        self.pending_tokens = 0
        self.samples = 0

    def add(self, ids, mask) -> None:
        ids = np.asarray(ids).astype(self.dtype, copy=False)
        self.pending.append(ids)
        if "loss_mask" in self.files:
            self.masks.append(np.asarray(mask, dtype=np.uint8))
        self.total += len(ids)
        self.samples += 1
        self.pending_tokens += len(ids)
        self.offsets.append(self.total)
        if self.pending_tokens >= FLUSH_TOKENS:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.files["tokens"].write(np.concatenate(self.pending).tobytes())
        if self.masks:
            self.files["loss_mask"].write(np.concatenate(self.masks).tobytes())
        self.files["offsets"].write(np.asarray(self.offsets, dtype=np.int64).tobytes())
        self.pending, self.masks, self.offsets, self.pending_tokens = [], [], [], 0

    def close(self) -> None:
        if not self.files["tokens"].closed:
            self.flush()
            for f in self.files.values():
                f.close()


def _unit_rows(rows, tokenizer: SpeechTokenizer):
    """Stage 1: ``(ids, 0)`` or a ``BadRow`` per row, reading Arrow batches vectorized."""
    for table in rows.with_format("arrow").iter(batch_size=BATCH_ROWS):
        column = table.column("units").combine_chunks()
        lengths = pc.list_value_length(column).fill_null(-1).to_numpy()
        flat = pc.list_flatten(column).to_numpy()
        start = 0
        for n in lengths:
            units = None if n < 0 else flat[start : start + n]
            start += max(n, 0)
            try:
                yield stage_data.unit_sample(units, tokenizer), None
            except stage_data.BadRow as e:
                yield e


def _encoder(config: str, tokenizer: SpeechTokenizer, recipe: Recipe):
    """Row → ``(ids, loss_mask)`` for the rows of ``config``; raises ``BadRow``."""
    head = stage_data.prompt_head(tokenizer, recipe.system)
    if config == "text_chat":
        return lambda row: stage_data.chat_sample(row, tokenizer, head)
    if recipe.style == "released":
        released_tokenizer = ReleasedTokenizer(tokenizer.tok)
        encode = lambda row: stage_data.released_sample(row, tokenizer, released_tokenizer)  # noqa: E731
    else:
        names = recipe.names(config)
        encode = lambda row: stage_data.instruction_sample(row, tokenizer, names, head)  # noqa: E731

    def masked(row):
        ids, prompt_length = encode(row)
        return ids, np.arange(len(ids)) >= prompt_length

    return masked


def _instruction_rows(rows, tokenizer: SpeechTokenizer, recipe: Recipe, config: str):
    encode = _encoder(config, tokenizer, recipe)
    columns = ["human", "answer"] if config == "text_chat" else ["prompt", "response"]
    for batch in rows.select_columns(columns).iter(batch_size=BATCH_ROWS):
        for values in zip(*(batch[c] for c in columns), strict=True):
            try:
                ids, mask = encode(dict(zip(columns, values, strict=True)))
            except stage_data.BadRow as e:
                yield e
                continue
            if len(ids) > recipe.max_length:
                yield stage_data.BadRow("too_long")
            else:
                yield ids, mask


def _uses(n: int, weight: float, seed: int, config: str) -> np.ndarray:
    """The row indices a config contributes: each row ``floor(weight)`` times, plus a
    subset of ``round(frac(weight) · n)`` rows drawn by ``seed``."""
    whole, part = divmod(weight, 1.0)
    rng = np.random.default_rng([seed, int(hashlib.sha256(config.encode()).hexdigest()[:8], 16)])
    subset = np.sort(rng.permutation(n)[: round(part * n)])
    return np.concatenate([np.tile(np.arange(n), int(whole)), subset]).astype(np.int64)


def build(
    rows,
    tokenizer: SpeechTokenizer,
    recipe: Recipe,
    folder: Path,
    *,
    fingerprint: str = "",
    progress: bool = True,
) -> Path:
    """Tokenize ``rows`` (a ``datasets.Dataset``, or ``{config: Dataset}`` for a mix) into a
    store at ``folder``, whole or not at all.

    Raises:
        TooManyBadRows: more than ``MAX_BAD_SHARE`` of the rows could not be used.
        ValueError: no usable row at all.
    """
    tables = by_config(rows, recipe)
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    vocab = len(tokenizer.tok)
    dtype = np.uint16 if vocab <= np.iinfo(np.uint16).max + 1 else np.uint32
    writer = _Writer(partial, dtype, masks=recipe.stage != 1)
    counts: Counter = Counter()
    configs: dict[str, dict] = {}
    tic = time.perf_counter()
    try:
        for config, weight in recipe.mix:
            table = tables[config]
            if weight != 1.0:
                table = table.select(_uses(len(table), weight, recipe.seed, config))
            if recipe.stage == 1:
                samples = _unit_rows(table, tokenizer)
            else:
                samples = _instruction_rows(table, tokenizer, recipe, config)
            first_sample, first_token = writer.samples, writer.total
            for item in tqdm(
                samples,
                total=len(table),
                desc=f"token store, stage {recipe.stage}, {config}",
                unit=" rows",
                disable=not progress,
                mininterval=5,
            ):
                if isinstance(item, stage_data.BadRow):
                    counts[item.reason] += 1
                else:
                    writer.add(*item)
            configs[config] = {
                "weight": weight,
                "rows": len(table),
                "samples": writer.samples - first_sample,
                "tokens": writer.total - first_token,
            }
        writer.close()
        total_rows = sum(c["rows"] for c in configs.values())
        bad = {k: v for k, v in counts.items() if k != "too_long"}
        n_bad = sum(bad.values())
        if total_rows and n_bad / total_rows > MAX_BAD_SHARE:
            raise TooManyBadRows(
                f"{n_bad} of {total_rows} rows of {recipe.label} could not be used "
                f"(over {MAX_BAD_SHARE:.0%}): {dict(sorted(bad.items()))}"
            )
        samples_kept = total_rows - sum(counts.values())
        if not samples_kept:
            raise ValueError(f"no training samples in {recipe.label} ({dict(counts)})")
        meta = {
            "version": VERSION,
            "recipe": recipe.__dict__,
            "fingerprint": fingerprint,
            "tokenizer": tokenizer_hash(tokenizer.tok),
            "dtype": np.dtype(dtype).name,
            "vocab": vocab,
            "rows": total_rows,
            "samples": samples_kept,
            "tokens": writer.total,
            "configs": configs,
            "dropped_too_long": counts.pop("too_long", 0),
            "skipped": dict(sorted(counts.items())),
            "build_seconds": round(time.perf_counter() - tic, 3),
        }
        (partial / META).write_text(json.dumps(meta, indent=1) + "\n")
        try:
            os.rename(partial, folder)
        except OSError:
            if not (folder / META).exists():
                raise
            shutil.rmtree(partial)  # another process put the same store there first
    except BaseException:
        writer.close()
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder


def by_config(rows, recipe: Recipe) -> dict:
    """``{config: Dataset}`` of a recipe: ``rows`` is that already, or one config's rows."""
    if isinstance(rows, dict):
        return rows
    ((config, _),) = recipe.mix
    return {config: rows}


def fingerprint_of(rows, recipe: Recipe) -> str:
    return "+".join(table._fingerprint for table in by_config(rows, recipe).values())


class TokenStore:
    """A finished store, memory-mapped."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / META).read_text())
        self.tokens = self._map("tokens", self.meta["dtype"])
        self.offsets = self._map("offsets", np.int64)
        if self.meta["recipe"]["stage"] != 1:
            self.loss_mask = self._map("loss_mask", np.uint8)

    def _map(self, name: str, dtype) -> np.ndarray:
        return np.memmap(self.folder / f"{name}.bin", dtype=dtype, mode="r")

    def __len__(self) -> int:
        return len(self.offsets) - 1


class Instructions:
    """Stages 2–3: sample ``i`` is the store's sample ``i``; only its targets are labels."""

    def __init__(self, store: TokenStore):
        self.store = store
        self.lengths = np.diff(store.offsets)

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        s = self.store
        span = slice(s.offsets[i], s.offsets[i + 1])
        ids = np.asarray(s.tokens[span], dtype=np.int64)
        return ids, np.where(s.loss_mask[span].astype(bool), ids, stage_data.IGNORE)


class Blocks:
    """Stage 1: the store's token stream cut into full blocks of ``block`` tokens.

    As ``run_clm``'s ``group_texts``, the tail shorter than a block is dropped (counted in
    ``dropped_tail_tokens``) unless it is all there is, so every block is real tokens.
    """

    def __init__(self, store: TokenStore, block: int):
        self.store, self.block = store, block
        total = len(store.tokens)
        self.count = total // block or (1 if total else 0)
        self.real_tokens = min(total, self.count * block)
        self.dropped_tail_tokens = total - self.real_tokens
        self.lengths = np.full(self.count, min(block, total), dtype=np.int64)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        start = b * self.block
        ids = np.asarray(self.store.tokens[start : start + self.block], dtype=np.int64)
        return ids, ids

    @property
    def efficiency(self) -> float:
        return self.real_tokens / (self.count * self.block) if self.count else 0.0


def open_samples(store: TokenStore, block: int) -> Instructions | Blocks:
    return Blocks(store, block) if store.meta["recipe"]["stage"] == 1 else Instructions(store)


def locate(rows, tokenizer: SpeechTokenizer, recipe: Recipe, cache: Path | None = None) -> Path:
    """Where the store of these rows, tokenizer and recipe lives (built or not)."""
    key = store_key(fingerprint_of(rows, recipe), tokenizer_hash(tokenizer.tok), recipe)
    name = f"stage{recipe.stage}-{recipe.label}-{key}"
    return (cache or cache_root()) / "token-stores" / name


def prepare(
    rows,
    tokenizer: SpeechTokenizer,
    recipe: Recipe,
    cache: Path | None = None,
    progress: bool = True,
) -> Path:
    """The store's folder, built now unless a finished one is there."""
    folder = locate(rows, tokenizer, recipe, cache)
    _failed(folder).unlink(missing_ok=True)  # an earlier attempt's
    if not (folder / META).exists():
        fingerprint = fingerprint_of(rows, recipe)
        build(rows, tokenizer, recipe, folder, fingerprint=fingerprint, progress=progress)
    return folder


def _failed(folder: Path) -> Path:
    return folder.with_name(folder.name + ".failed")


def mark_failed(folder: Path, error: BaseException) -> None:
    """Say, beside ``folder``, that building it failed (the waiting ranks stop on it)."""
    _failed(folder).parent.mkdir(parents=True, exist_ok=True)
    _failed(folder).write_text(f"{type(error).__name__}: {error}\n")


def wait_for(folder: Path, poll_s: float = 2.0, say=print) -> TokenStore:
    """Block until another process (rank 0) has finished the store at ``folder``.

    Raises:
        RuntimeError: rank 0 failed to build it (its error is in ``<folder>.failed``).
    """
    waited, next_note = 0.0, 60.0
    while not (folder / META).exists():
        if _failed(folder).exists():
            raise RuntimeError(f"rank 0 could not build {folder}: {_failed(folder).read_text()}")
        time.sleep(poll_s)
        waited += poll_s
        if waited >= next_note:
            say(
                f"train: waiting {waited:.0f} s for the token store at {folder} (built by rank "
                "0; on several nodes --cache-dir must be a filesystem they share)"
            )
            next_note *= 2
    return TokenStore(folder)

"""Vocabulary expansion (§4.2, eq. 1–2) and tokenization that keeps typed text as text.

Added as whole tokens: units ``<0>``…``<K-1>`` and the control tokens of DESIGN.md §5.
New embedding rows start at the mean of the old rows plus small noise (eq. 2 keeps the
old rows; the init of the new ones is ours to choose).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch

from speechinstruct.templates import Segment

SOSP, EOSP = "<sosp>", "<eosp>"
CONTROL = (SOSP, EOSP, "[Human]", "[SpeechGPT]", "<eoh>", "<eoa>", "[tq]", "[ta]", "[ua]")
INIT_NOISE = 1e-3  # std of the noise added to the mean, relative to the rows' std


def unit_token(u: int) -> str:
    return f"<{u}>"


def num_units(tokenizer) -> int:
    """K of an expanded tokenizer (0 if it has no unit tokens)."""
    k = 0
    while unit_token(k) in tokenizer.get_vocab():
        k += 1
    return k


def add_tokens(tokenizer, k: int) -> int:
    """Add the unit and control tokens a tokenizer lacks; returns how many were added."""
    have = tokenizer.get_vocab()
    new = [t for t in [unit_token(u) for u in range(k)] + list(CONTROL) if t not in have]
    if new:
        tokenizer.add_tokens(new, special_tokens=True)
    return len(new)


def _gathered(params):
    """Under ZeRO-3 the weights are partitioned: gather them to edit, as DeepSpeed asks."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def resize(model, size: int, seed: int = 0) -> int:
    """Grow embeddings and head to ``size`` rows, new rows near the old mean; returns old size."""
    old = model.get_input_embeddings().num_embeddings  # also true of partitioned weights
    if size <= old:
        return old
    model.resize_token_embeddings(size, mean_resizing=False)
    generator = torch.Generator().manual_seed(seed)
    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight is not matrices[0]:
        matrices.append(head.weight)
    with _gathered(matrices), torch.no_grad():
        for w in matrices:
            rows = w[:old].float()
            mean, std = rows.mean(0), rows.std(0)
            noise = torch.randn(w.shape[0] - old, w.shape[1], generator=generator).to(w.device)
            w[old:] = (mean + noise * std * INIT_NOISE).to(w.dtype)
    return old


def expand(model, tokenizer, k: int, seed: int = 0) -> int:
    """Add the unit and control tokens, resize embeddings and head; returns the old size."""
    add_tokens(tokenizer, k)
    return resize(model, len(tokenizer), seed)


class SpeechTokenizer:
    """Token ids of markup (control tokens recognised), typed text (never), and units."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        vocab = tokenizer.get_vocab()
        self.k = num_units(tokenizer)
        if self.k == 0 or SOSP not in vocab:
            raise ValueError("the tokenizer has no unit tokens: expand the vocabulary first")
        self.unit0 = vocab[unit_token(0)]
        if any(vocab[unit_token(u)] != self.unit0 + u for u in range(self.k)):
            raise ValueError("unit tokens are not contiguous ids")
        self.sosp, self.eosp = vocab[SOSP], vocab[EOSP]
        self.eos = tokenizer.eos_token_id

    def markup(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def text(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False, split_special_tokens=True)["input_ids"]

    def unit_ids(self, units) -> np.ndarray:
        """Token ids of units (an array; no ``<sosp>``/``<eosp>``)."""
        units = np.asarray(units, dtype=np.int64)
        bad = (units < 0) | (units >= self.k)
        if bad.any():
            raise ValueError(f"unit {units[bad][0]} outside [0, {self.k})")
        return units + self.unit0

    def units(self, units) -> list[int]:
        return [self.sosp, *self.unit_ids(units).tolist(), self.eosp]

    def encode(self, pieces: list[Segment]) -> list[int]:
        ids: list[int] = []
        for kind, value in pieces:
            ids += {"markup": self.markup, "text": self.text, "speech": self.units}[kind](value)
        return ids

    def decode_units(self, ids) -> list[int]:
        return [i - self.unit0 for i in ids if self.unit0 <= i < self.unit0 + self.k]

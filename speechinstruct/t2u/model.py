"""The T2U model: transformers' BART classes trained from scratch, a character tokenizer.

Decoder ids ``unit_offset + u`` are unit ``u``; generation is restricted to units and
``</s>``. The model folder is plain HF format (``from_pretrained`` loads it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import BartConfig, BartForConditionalGeneration, PreTrainedTokenizerFast

from speechinstruct import presets

SPECIALS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = range(4)
CHARS = " abcdefghijklmnopqrstuvwxyz'"


CONFIGS = Path(__file__).parent / "configs"


@dataclass(frozen=True, slots=True)
class T2UPreset:
    """A T2U preset (``configs/tiny.yaml``, ``configs/paper.yaml``): model size and training."""

    d_model: int
    layers: int
    heads: int
    ffn: int
    max_positions: int
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    gradient_clipping: float
    warmup_fraction: float


def load_preset(preset: str, **overrides) -> T2UPreset:
    """A preset by name (``tiny``, ``paper``) or YAML path, with overrides applied."""
    return presets.load(T2UPreset, preset, CONFIGS, **overrides)


def normalize_text(text: str) -> str:
    """What T2U reads: lower case letters, apostrophes and single spaces."""
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def build_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + tuple(CHARS))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )


def build_model(k: int, preset: T2UPreset) -> BartForConditionalGeneration:
    unit_offset = len(SPECIALS) + len(CHARS)
    config = BartConfig(
        vocab_size=unit_offset + k,
        d_model=preset.d_model,
        encoder_layers=preset.layers,
        decoder_layers=preset.layers,
        encoder_attention_heads=preset.heads,
        decoder_attention_heads=preset.heads,
        encoder_ffn_dim=preset.ffn,
        decoder_ffn_dim=preset.ffn,
        max_position_embeddings=preset.max_positions,
        dropout=0.1,
        pad_token_id=PAD,
        bos_token_id=BOS,
        eos_token_id=EOS,
        decoder_start_token_id=BOS,
        forced_eos_token_id=None,
        unit_offset=unit_offset,
        num_units=k,
    )
    return BartForConditionalGeneration(config)


class T2U:
    """A loaded T2U model: ``generate(texts) -> unit lists``, batched by length."""

    def __init__(self, model: BartForConditionalGeneration, tokenizer: PreTrainedTokenizerFast):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.offset, self.k = model.config.unit_offset, model.config.num_units

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> T2U:
        model = BartForConditionalGeneration.from_pretrained(path).to(device)
        return cls(model, PreTrainedTokenizerFast.from_pretrained(path))

    def save(self, path: str | Path) -> None:
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)

    def encode(self, texts: list[str]) -> dict:
        enc = self.tokenizer([normalize_text(t) for t in texts], padding=True, return_tensors="pt")
        return {k: v.to(self.model.device) for k, v in enc.items() if k != "token_type_ids"}

    @torch.inference_mode()
    def generate(
        self,
        texts: list[str],
        batch_size: int = 16,
        units_per_char: float = 3.0,
        num_beams: int = 1,
    ) -> list[list[int]]:
        """Greedy (or beam) decoding of each text into units; ``[]`` for empty text."""
        out: list[list[int]] = [[] for _ in texts]
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        suppress = list(range(self.offset))
        suppress.remove(EOS)
        for start in range(0, len(order), batch_size):
            idx = [i for i in order[start : start + batch_size] if normalize_text(texts[i])]
            if not idx:
                continue
            enc = self.encode([texts[i] for i in idx])
            longest = int(enc["attention_mask"].sum(1).max())
            ids = self.model.generate(
                **enc,
                max_new_tokens=int(longest * units_per_char) + 8,
                num_beams=num_beams,
                do_sample=False,
                suppress_tokens=suppress,
                decoder_start_token_id=BOS,
            )
            for i, row in zip(idx, ids.cpu().numpy(), strict=True):
                # each text's own limit, so a result never depends on its batch-mates
                limit = int(len(normalize_text(texts[i])) * units_per_char) + 8
                out[i] = self.to_units(row)[:limit]
        return out

    def to_units(self, ids: np.ndarray) -> list[int]:
        units = []
        for t in ids[1:]:  # skip the decoder start token
            if t == EOS:
                break
            if t >= self.offset:
                units.append(int(t - self.offset))
        return units

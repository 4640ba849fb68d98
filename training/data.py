"""Training data from a published SpeechInstruct dataset: packing, prompt masking, buckets.

Stage 1 packs ``<sosp>…<eosp></s>`` sequences into full blocks (no padding). Stages 2–3
learn the ``response`` only: the system prompt and ``prompt`` are -100 (eq. 4); every
sample ends with ``<eoa></s>``; samples over the max length are dropped and counted,
never cut.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from schemas.outputs import require_finished
from speechinstruct.templates import SYSTEM, parse, segments
from training.tokens import SpeechTokenizer

IGNORE = -100


def load_split(data: str, config: str, split: str):
    """One split of a published dataset: a local folder (which must be a finished ``publish``
    output) or a Hub dataset name."""
    from datasets import load_dataset

    if Path(data).is_dir():
        require_finished(data, "published dataset")
    return load_dataset(data, config, split=split)


def dataset_units(data: str) -> int | None:
    """K recorded by ``publish`` in a local dataset folder, if there is one."""
    info = Path(data, "build.json")
    return json.loads(info.read_text())["extractor"]["k"] if info.exists() else None


@dataclass
class Encoded:
    samples: list[tuple[list[int], list[int]]] = field(default_factory=list)
    dropped_too_long: int = 0
    dropped_tail_tokens: int = 0
    real_tokens: int = 0
    slots: int = 0

    @property
    def efficiency(self) -> float:
        return self.real_tokens / self.slots if self.slots else 0.0


def pack_units(rows, st: SpeechTokenizer, block: int) -> Encoded:
    """Stage 1: concatenate unit sequences and cut into full blocks of ``block`` tokens.

    As ``run_clm``'s ``group_texts``, the tail shorter than a block is dropped (and counted
    in ``dropped_tail_tokens``) unless it is all there is, so every block is real tokens.
    """
    stream: list[int] = []
    for row in rows:
        stream += [*st.units(row["units"]), st.eos]
    full = len(stream) // block * block or len(stream)
    out = Encoded(real_tokens=full, dropped_tail_tokens=len(stream) - full)
    for start in range(0, full, block):
        chunk = stream[start : start + block]
        labels = chunk + [IGNORE] * (block - len(chunk))
        out.samples.append((chunk + [st.eos] * (block - len(chunk)), labels))
    out.slots = block * len(out.samples)
    return out


def prompt_head(st: SpeechTokenizer, system: str = SYSTEM) -> list[int]:
    """What every instruction sample starts with: BOS (if the model has one), the system prompt."""
    head = st.markup(system) if system else []
    return head if st.tok.bos_token_id is None else [st.tok.bos_token_id, *head]


def encode_instructions(rows, st: SpeechTokenizer, max_length: int, names: tuple[str, ...],
                        system: str = SYSTEM) -> Encoded:  # fmt: skip
    """Stages 2–3: ``(input_ids, labels)`` with everything before the response masked."""
    out = Encoded()
    head = prompt_head(st, system)
    for row in rows:
        name, fields = parse(row["prompt"], row["response"], names)
        prompt, response = segments(name, **fields)
        p_ids, r_ids = head + st.encode(prompt), [*st.encode(response), st.eos]
        if len(p_ids) + len(r_ids) > max_length:
            out.dropped_too_long += 1
            continue
        out.samples.append((p_ids + r_ids, [IGNORE] * len(p_ids) + r_ids))
        out.real_tokens += len(p_ids) + len(r_ids)
    out.slots = out.real_tokens
    return out


def batches(samples: list, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices in length buckets: shuffle, sort within mega-batches of 50, cut, shuffle."""
    rng = random.Random(f"{seed}:{epoch}")
    order = list(range(len(samples)))
    rng.shuffle(order)
    mega = batch_size * 50
    out = []
    for start in range(0, len(order), mega):
        chunk = sorted(order[start : start + mega], key=lambda i: len(samples[i][0]))
        out += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(out)
    return out


def collate(samples: list, index: list[int], pad_id: int) -> dict[str, torch.Tensor]:
    longest = max(len(samples[i][0]) for i in index)
    ids = torch.full((len(index), longest), pad_id, dtype=torch.long)
    labels = torch.full((len(index), longest), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(index), longest), dtype=torch.long)
    for row, i in enumerate(index):
        x, y = samples[i]
        ids[row, : len(x)], labels[row, : len(y)], mask[row, : len(x)] = (
            torch.tensor(x), torch.tensor(y), 1,
        )  # fmt: skip
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}

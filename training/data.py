"""Training samples from a published SpeechInstruct dataset: one row → token ids.

Stage 1 samples are ``<sosp>…<eosp></s>`` (the token store packs them into full blocks).
Stages 2–3 learn the ``response`` only: the system prompt and ``prompt`` are -100 (eq. 4);
every sample ends with ``<eoa></s>``. A row that cannot be parsed or encoded raises
``BadRow`` with a reason; the token store counts them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from schemas.outputs import require_finished
from speechinstruct.templates import ASSISTANT, EOA, EOH, HUMAN, SYSTEM, parse, segments
from training.tokens import SpeechTokenizer

IGNORE = -100


class BadRow(ValueError):
    """A row the trainer skips; ``reason`` is what the summary counts it under."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def load_split(data: str, config: str, split: str):
    """One split of a published dataset: a local folder (which must be a finished ``publish``
    output) or a Hub dataset name."""
    from datasets import load_dataset, load_dataset_builder

    if not Path(data).is_dir():
        return load_dataset(data, config, split=split)
    require_finished(data, "published dataset")
    # The card's configs name relative globs, so ``load_dataset(folder)`` caches by folder
    # name and card alone: a second folder of that name would read the first one's rows.
    # The card's files, resolved, key the cache by their paths and modification times.
    card = load_dataset_builder(data, config)
    files = card.config.data_files or {}
    if split not in files:
        raise ValueError(
            f"{data}: config {config!r} has no {split!r} split (it has {sorted(files)})"
        )
    return load_dataset(
        "parquet", data_files={split: list(files[split])}, features=card.info.features, split=split
    )


def dataset_info(data: str) -> dict:
    """What ``publish`` or ``import-speechinstruct`` recorded in a local dataset folder."""
    info = Path(data, "build.json")
    return json.loads(info.read_text()) if info.exists() else {}


def dataset_units(data: str) -> int | None:
    """K recorded in a local dataset folder, if there is one."""
    return dataset_info(data).get("extractor", {}).get("k")


def dataset_style(data: str) -> str:
    """The prompt style of a dataset's rows: ``released`` for imported release files."""
    return dataset_info(data).get("prompt_style", "paper")


def prompt_head(tokenizer: SpeechTokenizer, system: str = SYSTEM) -> list[int]:
    """What every instruction sample starts with: BOS (if the model has one), the system prompt."""
    head = tokenizer.markup(system) if system else []
    return head if tokenizer.tok.bos_token_id is None else [tokenizer.tok.bos_token_id, *head]


def unit_sample(units, tokenizer: SpeechTokenizer) -> np.ndarray:
    """Stage 1: ``<sosp> units <eosp> </s>`` as an id array."""
    if units is None:
        raise BadRow("missing_field", "units is null")
    if not len(units):
        raise BadRow("empty_units")
    try:
        ids = tokenizer.unit_ids(units)
    except ValueError as e:
        raise BadRow("does_not_encode", str(e)) from None
    return np.concatenate([[tokenizer.sosp], ids, [tokenizer.eosp, tokenizer.eos]])


def instruction_sample(
    row: dict, tokenizer: SpeechTokenizer, names: tuple[str, ...], head: list[int]
) -> tuple[list[int], int]:
    """Stages 2–3: the ids of ``head + prompt + response </s>`` and how many are prompt."""
    prompt, response = row.get("prompt"), row.get("response")
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise BadRow("missing_field", "prompt and response must be strings")
    try:
        name, fields = parse(prompt, response, names)
    except (ValueError, KeyError) as e:
        raise BadRow("does_not_parse", str(e)) from None
    prompt_segment, response_segment = segments(name, **fields)
    try:
        prompt_ids, response_ids = (
            head + tokenizer.encode(prompt_segment),
            [*tokenizer.encode(response_segment), tokenizer.eos],
        )
    except (ValueError, KeyError) as e:
        raise BadRow("does_not_encode", str(e)) from None
    return prompt_ids + response_ids, len(prompt_ids)


def released_sample(
    row: dict, tokenizer: SpeechTokenizer, released_tokenizer
) -> tuple[list[int], int]:
    """A row in the released format (``prompt`` = system prompt + ``[Human]: …
    [SpeechGPT]: ``; ``response`` = the answer through ``<eoa>``) tokenized as the released
    model is asked (by a ``released.ReleasedTokenizer``): the prompt as one string, the
    answer as the next; ``</s>`` appended; the loss on the answer only."""
    prompt, response = row.get("prompt"), row.get("response")
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise BadRow("missing_field", "prompt and response must be strings")
    if not prompt.rstrip().endswith("[SpeechGPT]:") or "<eoa>" not in response:
        raise BadRow("does_not_parse", "not a released-format turn")
    try:
        asked = released_tokenizer(prompt, bos=True)
        ids = [*asked, *released_tokenizer(response, bos=False), tokenizer.eos]
    except KeyError as e:
        raise BadRow("does_not_encode", str(e)) from None
    return ids, len(asked)


def chat_sample(row: dict, tokenizer: SpeechTokenizer, head: list[int]):
    """A ``text_chat`` row → ``(ids, loss_mask)``: after ``head``, every turn as
    ``[Human]: {human}<eoh> [SpeechGPT]: {answer}<eoa>``, then ``</s>``; the loss on each
    answer (with its ``<eoa>``) and on ``</s>``, never on what the human said."""
    human, answer = row.get("human"), row.get("answer")
    if not isinstance(human, list) or not isinstance(answer, list) or not human:
        raise BadRow("missing_field", "human and answer must be lists of turns")
    if len(human) != len(answer) or not all(isinstance(t, str) for t in human + answer):
        raise BadRow("does_not_parse", f"{len(human)} human turns, {len(answer)} answers")
    ids, mask = list(head), [False] * len(head)
    try:
        for asked, said in zip(human, answer, strict=True):
            question = tokenizer.encode(
                [("markup", HUMAN), ("text", asked), ("markup", f"{EOH} {ASSISTANT}")]
            )
            reply = tokenizer.encode([("text", said), ("markup", EOA)])
            ids += question + reply
            mask += [False] * len(question) + [True] * len(reply)
    except (ValueError, KeyError) as e:
        raise BadRow("does_not_encode", str(e)) from None
    return [*ids, tokenizer.eos], np.array([*mask, True])


def labels(ids, prompt_length: int) -> np.ndarray:
    """The targets of a sample: its ids, the first ``prompt_length`` masked."""
    out = np.array(ids, dtype=np.int64)
    out[:prompt_length] = IGNORE
    return out


def collate(samples: list[tuple], pad_id: int) -> dict[str, torch.Tensor]:
    """``(ids, labels)`` pairs → padded ``input_ids``/``labels``/``attention_mask``."""
    longest = max(len(x) for x, _ in samples)
    ids = torch.full((len(samples), longest), pad_id, dtype=torch.long)
    targets = torch.full((len(samples), longest), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(samples), longest), dtype=torch.long)
    for row, (x, y) in enumerate(samples):
        ids[row, : len(x)] = torch.as_tensor(np.asarray(x, dtype=np.int64))
        targets[row, : len(y)] = torch.as_tensor(np.asarray(y, dtype=np.int64))
        mask[row, : len(x)] = 1
    return {"input_ids": ids, "labels": targets, "attention_mask": mask}

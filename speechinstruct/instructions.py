"""SpeechInstruct rows from units and texts: cross-modal (§3.1) and chain-of-modality (§3.2).

Pure functions: every random choice is seeded by ``(seed, id)``, so a row does not depend
on the order in which a pipeline sees the data.
"""

from __future__ import annotations

import hashlib
import random

from speechinstruct import descriptions
from speechinstruct.templates import CHAIN_OF_MODALITY, STANDARD, render

SPLIT = "_split"
# the templates of each prompting of the chain_of_modality table, in FORMATS order: the
# paper's chain-of-modality (Appendix C), or standard prompting for its ablation (Appendix E)
PROMPTING = {"com": CHAIN_OF_MODALITY, "standard": STANDARD}
FORMATS = CHAIN_OF_MODALITY  # the format column: s2s, s2t, t2s, t2t


def split_of(id_: str, validation_share: float) -> str:
    """A stable train/validation assignment by hash of the id."""
    h = int(hashlib.sha256(id_.encode()).hexdigest()[:8], 16) / 16**8
    return "validation" if h < validation_share else "train"


def cross_modal(unit_row: dict, seed: int, asr_probability: float, validation_share: float) -> dict:
    """Template 1: an ASR instruction with probability p, else TTS, with a random description."""
    rng = random.Random(f"{seed}:{unit_row['id']}")
    task = "asr" if rng.random() < asr_probability else "tts"
    description = rng.choice(descriptions.load(task))
    units, text = list(unit_row["units"]), unit_row["text"]
    prompt, response = render(task, description=description, speech=units, text=text)
    return {
        "id": unit_row["id"],
        "task": task,
        "description": description,
        "units": units,
        "text": text,
        "prompt": prompt,
        "response": response,
        SPLIT: split_of(unit_row["id"], validation_share),
    }


def chain_of_modality(
    chat_id: str,
    text_instruction: str,
    text_response: str,
    speech_instruction: list[int],
    speech_response: list[int],
    validation_share: float,
    prompting: str = "com",
) -> list[dict]:
    """The four formats of one quadruplet, all in the same split, rendered with the
    ``prompting``'s templates (``PROMPTING``); ``format`` is the modality pair either way."""
    fields = {
        "text_instruction": text_instruction,
        "text_response": text_response,
        "speech_instruction": speech_instruction,
        "speech_response": speech_response,
    }
    split = split_of(chat_id, validation_share)
    rows = []
    for fmt, template in zip(FORMATS, PROMPTING[prompting], strict=True):
        prompt, response = render(template, **fields)
        rows.append(
            {
                "id": f"{chat_id}_{fmt}",
                "format": fmt,
                **fields,
                "prompt": prompt,
                "response": response,
                SPLIT: split,
            }
        )
    return rows

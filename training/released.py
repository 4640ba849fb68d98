"""The released SpeechGPT's conventions, for its checkpoints and its SpeechInstruct files.

From the reference's inference code (0nutation/SpeechGPT, ``speechgpt/src/infer/cli_infer.py``)
and its data: the system prompt (verbatim, "a intrinsic" and the double space included),
the turn template, the answer format, the sampling settings, and how its tokenizer —
transformers 4.29's slow ``LlamaTokenizer`` — turned a string into ids:

- the string is split at added tokens (``added_tokens.json``: ``<0>…<999>``, ``<sosp>``,
  ``<eosp>``, ``[Human]``, ``[SpeechGPT]``, ``<eoh>``, ``<eos>``; and ``<s> </s> <unk>``),
  the longest match at the earliest position;
- whitespace next to an added token is stripped on both sides (not next to ``<s>``…);
- every remaining non-empty chunk is encoded by sentencepiece on its own, so each starts
  with ``▁``; ``<eoa>``, ``[ta]``, ``[ua]``, ``[tq]`` are not tokens and become pieces.

Later transformers versions tokenize the same files differently, so this module does it
itself (``tests/released`` holds ids recorded from transformers 4.29 and compares).
"""

from __future__ import annotations

import re
from pathlib import Path

from speechinstruct.units import format_units

META_INSTRUCTION = (
    "You are an AI assistant whose name is SpeechGPT.\n- SpeechGPT is a intrinsic cross-modal "
    "conversational language model that is developed by Fudan University.  SpeechGPT can "
    "understand and communicate fluently with human through speech or text chosen by the "
    "user.\n- It can perceive cross-modal inputs and generate cross-modal outputs.\n"
)
HUMAN, TURN_END = "[Human]: ", " <eoh>. [SpeechGPT]: "
EOA = "<eoa>"
SAMPLING = {"temperature": 0.7, "top_p": 0.8, "top_k": 50}
CONTROL_STRINGS = ("<eoa>", "[tq]", "[ta]", "[ua]", "<eoh>", "<eos>", "</s>", "<s>")
_SECTION = re.compile(r";?\s*\[(tq|ta|ua)\]\s*")


class ReleasedTokenizer:
    """Token ids of strings exactly as transformers 4.29's ``LlamaTokenizer`` made them.

    ``encode`` takes the template's pieces (as ``SpeechTokenizer.encode``): markup is split
    at added tokens; typed text is never split, so it cannot forge a control token, but it
    joins the markup around it into one sentencepiece chunk, as in the reference.
    """

    def __init__(self, tokenizer, sp_model: str | Path | None = None):
        import sentencepiece as spm

        self.tok = tokenizer
        path = Path(
            sp_model
            or getattr(tokenizer, "vocab_file", None)
            or Path(tokenizer.name_or_path, "tokenizer.model")
        )
        if not path.is_file():
            raise FileNotFoundError(f"the released prompt style needs LLaMA's {path}")
        self.sp = spm.SentencePieceProcessor(model_file=str(path))
        self.ids = dict(tokenizer.get_added_vocab())
        specials = {t for t in (tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token) if t}
        for token in specials:
            self.ids[token] = tokenizer.convert_tokens_to_ids(token)
        self.stripping = set(self.ids) - specials
        names = sorted(self.ids, key=len, reverse=True)  # longest first at a position
        self.split = re.compile("(" + "|".join(map(re.escape, names)) + ")")
        self.bos = tokenizer.bos_token_id

    def __call__(self, text: str, bos: bool = True) -> list[int]:
        return self.encode([("markup", text)], bos)

    def encode(self, pieces, bos: bool = False) -> list[int]:
        parts: list[str] = [""]  # chunks at even positions, added tokens at odd ones
        for kind, value in pieces:
            if kind == "text":
                parts[-1] += value
                continue
            text = format_units(value) if kind == "speech" else value
            found = self.split.split(text)
            parts[-1] += found[0]
            parts += found[1:]
        for i in range(1, len(parts), 2):
            if parts[i] in self.stripping:
                parts[i - 1], parts[i + 1] = parts[i - 1].rstrip(), parts[i + 1].lstrip()
        ids = [self.bos] if bos and self.bos is not None else []
        for i, part in enumerate(parts):
            if i % 2:
                ids.append(self.ids[part])
            elif part:
                ids += self.sp.encode(part)
        return ids


def head(released_tokenizer: ReleasedTokenizer) -> list[int]:
    """``<s>`` and the system prompt, as they start the reference's prompt string. In that
    string ``[Human]`` follows the prompt and strips its trailing newline, so it goes here."""
    return released_tokenizer.encode([("markup", META_INSTRUCTION.rstrip())], bos=True)


def question(text: str | None = None, units: list[int] | None = None):
    """A human turn in the reference's template: typed text, or the reduced units."""
    asked = ("speech", units) if units is not None else ("text", text)
    return [("markup", HUMAN), asked, ("markup", TURN_END)]


def cross_modal(description: str, asked: tuple[str, object]):
    """A cross-modal instruction as the released SpeechInstruct writes it: ``[Human]:
    {description} This is input: {speech or text}<eoh> [SpeechGPT]: ``; ``asked`` is a
    ``("speech", units)`` or ``("text", text)`` piece."""
    return [
        ("markup", f"[Human]: {description} This is input: "),
        asked,
        ("markup", "<eoh> [SpeechGPT]: "),
    ]


def parse_answer(answer: str) -> dict[str, str]:
    """``{transcript}; [ta] {text}; [ua] <sosp>…<eosp><eoa>`` (any part may be missing) →
    ``tq``, ``ta``, ``ua``: strings free of the control strings."""
    answer = answer.split(EOA)[0]
    sections = _SECTION.split(answer)
    out = {"lead": sections[0]}
    out |= dict(zip(sections[1::2], sections[2::2], strict=True))
    lead = out.pop("lead")
    if "ta" not in out:
        out["ta"] = lead
    elif "tq" not in out and lead.strip():  # the reference's format: the transcript first
        out["tq"] = lead
    return {k: clean(v) for k, v in out.items()}


def clean(text: str) -> str:
    """Text with no control strings (and no unit tokens) left in it."""
    text = re.sub(r"<sosp>.*?(<eosp>|$)", "", text, flags=re.S)
    for control in CONTROL_STRINGS:
        text = text.replace(control, "")
    return re.sub(r"\s+", " ", text).strip(" ;")

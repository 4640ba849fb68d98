"""The SpeechInstruct templates as data, one ``render`` and one ``parse`` (a round trip).

Template 1 (§3.1) makes cross-modal ASR/TTS instructions; Appendix C gives the four
chain-of-modality (CoM) templates and Appendix E the four standard ones. The wording is
the paper's; every human turn ends in ``<eoh>`` and every answer in ``<eoa>`` (the paper's
T2T templates omit ``<eoh>``, and its stray ``.`` after ``<eoh>``/``<eoa>`` is dropped), as
in the released data. ``prompt`` is everything up to the answer; ``response`` is the
answer, the only part the trainer puts loss on (eq. 4).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from speechinstruct.units import format_units, parse_units

SYSTEM = (
    "You are an AI assistant whose name is SpeechGPT.\n"
    "- SpeechGPT is an intrinsic cross-modal conversational language model. SpeechGPT can "
    "understand and communicate fluently with human through speech or text chosen by the user.\n"
    "- It can perceive cross-modal inputs and generate cross-modal outputs.\n"
)
HUMAN, ASSISTANT, EOH, EOA = "[Human]: ", "[SpeechGPT]: ", "<eoh>", "<eoa>"
SPEECH_FIELDS = frozenset({"speech", "speech_instruction", "speech_response"})


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    human: str  # the human turn's text, with {fields}
    answer: str  # the assistant's answer, with {fields}

    @property
    def fields(self) -> tuple[str, ...]:
        parts = string.Formatter().parse(self.human + self.answer)
        return tuple(f for _, f, _, _ in parts if f)


_S2S_HUMAN = (
    "This is a speech instruction: {speech_instruction}. And your response should be speech. "
    "You can do it step by step. You can first transcribe the instruction and get the text "
    "Instruction. Then you can think about the instruction and get the text response. Last, "
    "you should speak the response aloud "
)
_S2T_HUMAN = (
    "This is a speech instruction: {speech_instruction}. And your response should be text. "
    "You can do it step by step. You can first transcribe the instruction and get the text "
    "instruction. Then you can think about the instruction and get the text response. "
)
_T2S_HUMAN = (
    "This is a text instruction: {text_instruction}. And your response should be speech. "
    "You can do it step by step. You can think about the instruction and get the text "
    "response. Then you should speak the response aloud "
)
_T2T_HUMAN = (
    "This is a text instruction: {text_instruction}. And your response should be text. "
    "You can think about the instruction and get the text response. "
)

_SPEECH_I = "This is a speech instruction: {speech_instruction}. And your response should be "
_TEXT_I = "This is a text instruction: {text_instruction}. And your response should be "
_S2S = "[tq] {text_instruction}; [ta] {text_response}; [ua] {speech_response}"

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        # Template 1 (§3.1): cross-modal instructions
        Template("asr", "{description} This is input: {speech}", "{text}"),
        Template("tts", "{description} This is input: {text}", "{speech}"),
        # Appendix C: chain-of-modality
        Template("s2s", _S2S_HUMAN, _S2S),
        Template("s2t", _S2T_HUMAN, "[tq] {text_instruction}; [ta] {text_response}"),
        Template("t2s", _T2S_HUMAN, "[ta] {text_response}; [ua] {speech_response}"),
        Template("t2t", _T2T_HUMAN, "[ta] {text_response}"),
        # Appendix E: standard prompting
        Template("std_s2s", _SPEECH_I + "speech ", "[ua] {speech_response}"),
        Template("std_s2t", _SPEECH_I + "text. ", "[ta] {text_response}"),
        Template("std_t2s", _TEXT_I + "speech ", "[ua] {speech_response}"),
        Template("std_t2t", _TEXT_I + "text. ", "[ta] {text_response}"),
    )
}
CROSS_MODAL = ("asr", "tts")
CHAIN_OF_MODALITY = ("s2s", "s2t", "t2s", "t2t")
STANDARD = ("std_s2s", "std_s2t", "std_t2s", "std_t2t")


Segment = tuple[str, object]  # ("markup" | "text", str) or ("speech", list of units)


def _segments(text: str, values: dict) -> list[Segment]:
    out: list[Segment] = []
    for literal, field, _, _ in string.Formatter().parse(text):
        if literal:
            out.append(("markup", literal))
        if field:
            kind = "speech" if field in SPEECH_FIELDS else "text"
            out.append((kind, list(values[field]) if kind == "speech" else str(values[field])))
    return out


def segments(name: str, **fields) -> tuple[list[Segment], list[Segment]]:
    """The prompt and response of template ``name`` as markup, text and speech pieces.

    A tokenizer turns only ``markup`` into control tokens; ``text`` (what a person or a
    chat wrote) is tokenized as plain text, so it can never forge ``<eoh>`` or ``<123>``.
    """
    template = TEMPLATES[name]
    missing = set(template.fields) - set(fields)
    if missing:
        raise KeyError(f"template {name!r} needs {sorted(missing)}")
    prompt = _segments(HUMAN + template.human + EOH + " " + ASSISTANT, fields)
    return prompt, _segments(template.answer + EOA, fields)


def join(pieces: list[Segment]) -> str:
    return "".join(format_units(v) if kind == "speech" else v for kind, v in pieces)


def render(name: str, **fields) -> tuple[str, str]:
    """``(prompt, response)`` of template ``name``; speech fields take unit lists."""
    prompt, response = segments(name, **fields)
    return join(prompt), join(response)


def _pattern(text: str) -> str:
    out = ""
    for literal, field, _, _ in string.Formatter().parse(text):
        out += re.escape(literal)
        if field in SPEECH_FIELDS:
            out += rf"(?P<{field}><sosp>(?:<\d+>)*<eosp>)"
        elif field:
            out += rf"(?P<{field}>.*?)"
    return out


_COMPILED = {
    name: re.compile(
        re.escape(HUMAN)
        + _pattern(t.human)
        + re.escape(EOH + " " + ASSISTANT)
        + _pattern(t.answer)
        + re.escape(EOA),
        re.DOTALL,
    )
    for name, t in TEMPLATES.items()
}


def parse(prompt: str, response: str, names: tuple[str, ...] | None = None) -> tuple[str, dict]:
    """The template name and fields that ``render`` would turn into ``(prompt, response)``."""
    for name in names or tuple(TEMPLATES):
        match = _COMPILED[name].fullmatch(prompt + response)
        if match and prompt.endswith(ASSISTANT):
            fields = {
                k: parse_units(v) if k in SPEECH_FIELDS else v for k, v in match.groupdict().items()
            }
            if render(name, **fields) == (prompt, response):
                return name, fields
    raise ValueError(f"no template matches {prompt[:80]!r} … {response[-40:]!r}")


_SECTION = re.compile(r"\[(tq|ta|ua)\]\s*(.*?)\s*(?=;\s*\[(?:tq|ta|ua)\]|<eoa>|$)", re.DOTALL)


def parse_answer(answer: str) -> dict:
    """What a (possibly unfinished) generated answer holds: ``tq``/``ta`` text, ``ua`` units."""
    out: dict = {}
    for key, value in _SECTION.findall(answer):
        if key == "ua":
            try:
                out["ua"] = parse_units(value if "<eosp>" in value else value + "<eosp>")
            except ValueError:
                continue
        else:
            out[key] = value
    return out

"""Answers from a SpeechGPT model under the template's constraints: the engine of talk.

``Talker`` holds a model, its tokenizer, a unit extractor and a vocoder, with the
conversation so far. The prompt is chain-of-modality (Appendix C): speech in → the model
first transcribes (``[tq]``), then answers in text (``[ta]``), then speaks the answer
(``[ua]``) when the reply is speech. With ``prompting="standard"`` (Appendix E, the
ablation of §6.1) the answer goes straight to ``[ua]`` or ``[ta]``, with no text step.
The template's markup (``[tq] ``, ``; [ta] ``, ``; [ua] <sosp>``, ``<eoa>``) is put in by
us, the words and units are the model's: each section is generated on its own, text
sections stop at ``;``, ``[`` or an end token and may not hold unit tokens, the speech
section holds only unit tokens and ends at ``<eosp>``. So every answer parses, whatever
the model's training stage.

With the ``released`` prompt style (the released SpeechGPT-7B-cm/-com), the question is
put as the reference's CLI put it (its system prompt and ``[Human]: … <eoh>.
[SpeechGPT]: `` turn; a spoken question is its reduced units), the model writes the
whole answer, generation stops at ``<eoa>`` however it is tokenized, and the answer is
parsed as ``{transcript}; [ta] {text}; [ua] <sosp>…``.

Turns are kept as history while they fit the context window with room for the answer;
the oldest are dropped first. ``speak`` is the model as a TTS system (eval-speech's (c)).
``speechgpt talk`` and ``speechgpt web`` (in ``speechgpt/``) are the commands around it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from schemas import SAMPLE_RATE
from speechinstruct.instructions import FORMATS, PROMPTING
from speechinstruct.templates import EOA, segments
from speechinstruct.units import reduce
from training import data as stage_data
from training import released
from training.model import STYLES, load_for_inference, prompt_style
from training.tokens import SpeechTokenizer

MAX_INPUT_S = 60.0
STOPS = (";", "[")  # a text section ends where the template's next section would begin
SAMPLING = {"greedy": {"temperature": 0.0}, "released": released.SAMPLING}


class TalkError(ValueError):
    """Input talk cannot use (no audio, unreadable file, too long, empty text)."""


@dataclass
class Turn:
    transcript: str | None  # [tq]: what the model heard (speech input only)
    text: str  # [ta]
    units: list[int]  # [ua] (speech reply only)
    audio: np.ndarray | None  # the spoken answer at SAMPLE_RATE
    dropped: int = 0  # history turns dropped to make room
    seconds: float = 0.0
    wav: Path | None = None


@dataclass
class Settings:
    max_text_tokens: int = 128
    max_units: int = 500
    temperature: float = 0.0  # 0: greedy
    top_p: float = 0.9
    seed: int = 0
    top_k: int = 0  # 0: no top-k cut


def load_wave(path: str | Path, max_s: float = MAX_INPUT_S) -> np.ndarray:
    """A spoken question as 16 kHz mono float32; TalkError says what is wrong with it."""
    import librosa

    path = Path(path)
    if not path.is_file():
        raise TalkError(f"no such audio file: {path}")
    try:
        wave, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    except Exception as e:  # librosa raises many types for undecodable input
        raise TalkError(f"cannot read {path.name} as audio: {e}") from e
    return check_wave(wave, max_s)


def check_wave(wave: np.ndarray, max_s: float = MAX_INPUT_S) -> np.ndarray:
    if wave.size < SAMPLE_RATE // 10:
        raise TalkError("the audio is empty or shorter than 0.1 s")
    if wave.size > max_s * SAMPLE_RATE:
        raise TalkError(
            f"the audio is {wave.size / SAMPLE_RATE:.1f} s long; the limit is {max_s:g} s"
        )
    if not np.isfinite(wave).all() or np.abs(wave).max() < 1e-4:
        raise TalkError("the audio is silent or damaged")
    return wave.astype(np.float32)


class Talker:
    """A model, its tokenizer, a unit extractor and a vocoder, with the conversation so far."""

    def __init__(
        self,
        model,
        tokenizer,
        extractor,
        vocoder,
        settings: Settings | None = None,
        style: str = "paper",
        prompting: str = "com",
    ):
        if style not in STYLES:
            raise ValueError(f"prompt style {style!r}: choose from {', '.join(STYLES)}")
        if prompting not in PROMPTING:
            raise ValueError(f"prompting {prompting!r}: choose from {', '.join(PROMPTING)}")
        if style == "released" and prompting != "com":
            raise ValueError("the released prompt style has chain-of-modality prompting only")
        self.model, self.st, self.style = model, SpeechTokenizer(tokenizer), style
        self.templates = dict(zip(FORMATS, PROMPTING[prompting], strict=True))
        self.extractor, self.vocoder = extractor, vocoder
        self.settings = settings or Settings()
        self.history: list[list[int]] = []  # token ids of each earlier turn, question + answer
        if style == "released":
            self.released = released.ReleasedTokenizer(tokenizer)
            self.head = released.head(self.released)
        else:
            self.head = stage_data.prompt_head(self.st)
        self.window = getattr(model.config, "max_position_embeddings", 2048)
        vocab = self.model.get_input_embeddings().weight.shape[0]
        st = self.st
        self.unit_ids = torch.zeros(vocab, dtype=torch.bool)
        self.unit_ids[st.unit0 : st.unit0 + st.k] = True
        self.text_ids = ~self.unit_ids
        self.text_ids[[st.sosp, st.eosp]] = False
        vocab_ids = tokenizer.get_vocab()
        self.ends = {vocab_ids[t] for t in (EOA, "<eoh>") if t in vocab_ids} | {st.eos}
        self.any_id = torch.ones(vocab, dtype=torch.bool)
        self.generator = torch.Generator().manual_seed(self.settings.seed)

    @classmethod
    def load(
        cls,
        model: str,
        lora: str | None,
        extractor,
        vocoder,
        settings=None,
        style: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        prompting: str = "com",
    ) -> Talker:
        net, tokenizer = load_for_inference(model, lora, device, dtype)
        style = style or prompt_style(lora or model, tokenizer)
        return cls(net, tokenizer, extractor, vocoder, settings, style, prompting)

    def reset(self) -> None:
        self.history.clear()

    # -- one turn ---------------------------------------------------------------------------

    def turn(
        self, text: str | None = None, wave: np.ndarray | None = None, reply: str = "speech"
    ) -> Turn:
        """Answer a typed ``text`` or a spoken ``wave`` (16 kHz), in ``reply`` speech or text."""
        if reply not in ("speech", "text"):
            raise TalkError(f"reply must be speech or text, not {reply!r}")
        if (text is None) == (wave is None):
            raise TalkError("give either text or audio")
        start = time.perf_counter()
        if self.style == "released":
            return self._released_turn(text, wave, reply, start)
        if wave is not None:
            units, _ = reduce(self.extractor([check_wave(wave)])[0])
            name = "s2s" if reply == "speech" else "s2t"
            fields = {"speech_instruction": units.tolist()}
        else:
            if not text.strip():
                raise TalkError("the text is empty")
            name = "t2s" if reply == "speech" else "t2t"
            fields = {"text_instruction": text.strip()}
        template = self.templates[name]
        question = self.st.encode(segments(template, **_blank(fields))[0])
        dropped = self._fit(question)
        context = self.head + [i for past in self.history for i in past] + question

        answer, transcript, said, units = [], None, "", []
        if template == name:  # chain of modality: [tq] (speech in), [ta], then [ua]
            if name in ("s2s", "s2t"):
                transcript = self._text(context, answer, "[tq] ")
            said = self._text(context, answer, "[ta] " if transcript is None else "; [ta] ")
            if reply == "speech":
                units = self._units(context, answer, "; [ua] ")
        elif reply == "speech":  # standard prompting: the answer is [ua] or [ta] alone
            units = self._units(context, answer, "[ua] ")
        else:
            said = self._text(context, answer, "[ta] ")
        answer += self.st.markup(EOA)
        self.history.append(question + answer)
        audio = None
        if units:
            audio = self.vocoder.synthesize(units)
        return Turn(transcript, said, units, audio, dropped, time.perf_counter() - start)

    def speak(self, text: str) -> tuple[list[int], np.ndarray | None]:
        """Text → units with the cross-modal TTS instruction (Template 1), then → speech.

        No history: this is the model as a TTS system, for eval-speech's (c).
        """
        from speechinstruct.descriptions import load as descriptions

        units = self._speech(self.tts_prompt(text, descriptions("tts")[0]))
        return units, self.vocoder.synthesize(units) if units else None

    def tts_prompt(self, text: str, description: str) -> list[int]:
        """The ids of a TTS instruction through ``<sosp>``, in the model's prompt style
        (released: ``[Human]: {description} This is input: {text}<eoh> [SpeechGPT]: ``)."""
        if self.style == "released":
            pieces = released.cross_modal(description, ("text", text))
            return self.head + self.released.encode(pieces) + [self.st.sosp]
        fields = {"description": description, "text": text, "speech": []}
        return self.head + self.st.encode(segments("tts", **fields)[0]) + [self.st.sosp]

    def continue_units(self, units: list[int]) -> list[int]:
        """Stage 1's task (§6.2's speech continuation): the units that follow ``<sosp>``
        + ``units`` (no ``<eosp>``), at least one and up to ``<eosp>`` or ``max_units``."""
        ids = [self.st.sosp, *self.st.unit_ids(units).tolist()]
        if len(ids) + self.settings.max_units > self.window:
            raise TalkError(
                f"a {len(units)}-unit prompt and up to {self.settings.max_units} new units "
                f"do not fit the {self.window}-token context"
            )
        return self._speech(ids)

    def _released_turn(
        self, text: str | None, wave: np.ndarray | None, reply: str, start: float
    ) -> Turn:
        """The reference's way: the model writes the whole answer, which is then parsed."""
        if wave is not None:
            units, _ = reduce(self.extractor([check_wave(wave)])[0])
            pieces = released.question(units=units.tolist())
        else:
            if not text.strip():
                raise TalkError("the text is empty")
            pieces = released.question(text=text.strip())
        question = self.released.encode(pieces)
        dropped = self._fit(question)
        context = self.head + [i for past in self.history for i in past] + question
        s = self.settings
        new = self._generate(
            context, self.any_id, 3 * s.max_text_tokens + s.max_units, self._released_done
        )
        new = [i for i in new if i != self.st.eos]
        self.history.append(question + new)
        parts = released.parse_answer(self.st.tok.decode(new))
        units: list[int] = []
        if reply == "speech" and self.st.sosp in new:
            after = new[new.index(self.st.sosp) + 1 :]
            units = self.st.decode_units(
                after[: after.index(self.st.eosp)] if self.st.eosp in after else after
            )
        audio = self.vocoder.synthesize(units) if units else None
        return Turn(
            parts.get("tq"), parts.get("ta", ""), units, audio, dropped, time.perf_counter() - start
        )

    def _released_done(self, new: list[int]) -> bool:
        """``<eoa>`` is pieces in the released tokenizer: look at the decoded tail."""
        return new[-1] == self.st.eos or released.EOA in self.st.tok.decode(new[-8:])

    def _fit(self, question: list[int]) -> int:
        """Drop the oldest turns until question + history + the longest answer fit."""
        s = self.settings
        room = 3 * s.max_text_tokens + s.max_units + 16
        need = len(self.head) + len(question) + room
        if need > self.window:
            raise TalkError(
                f"the question takes {len(question)} tokens; with room for the answer "
                f"({room}) it does not fit the {self.window}-token context"
            )
        dropped = 0
        while self.history and need + sum(map(len, self.history)) > self.window:
            self.history.pop(0)
            dropped += 1
        return dropped

    def _text(self, context: list[int], answer: list[int], markup: str) -> str:
        answer += self.st.markup(markup)
        new = self._generate(
            context + answer, self.text_ids, self.settings.max_text_tokens, self._text_done
        )
        said = self.st.tok.decode([i for i in new if i not in self.ends])
        for stop in STOPS:
            said = said.split(stop)[0]
        said = said.strip()
        answer += self.st.text(said)
        return said

    def _text_done(self, new: list[int]) -> bool:
        return new[-1] in self.ends or any(c in self.st.tok.decode(new[-1:]) for c in STOPS)

    def _units(self, context: list[int], answer: list[int], markup: str) -> list[int]:
        answer += [*self.st.markup(markup), self.st.sosp]
        units = self._speech(context + answer)
        answer += [self.st.unit0 + u for u in units] + [self.st.eosp]
        return units

    def _speech(self, ids: list[int]) -> list[int]:
        """The units generated after ``ids`` (ending in ``<sosp>``): at least one, to ``<eosp>``."""
        ended = lambda new: new[-1] == self.st.eosp  # noqa: E731
        new = self._generate(
            ids, self.unit_ids, self.settings.max_units, ended, eosp_after_first=True
        )
        return self.st.decode_units(new)

    @torch.inference_mode()
    def _generate(
        self,
        ids: list[int],
        allowed: torch.Tensor,
        limit: int,
        done,
        eosp_after_first: bool = False,
    ) -> list[int]:
        """Up to ``limit`` new tokens after ``ids``, drawn only from ``allowed``."""
        past, new = None, []
        device = self.model.device
        step = torch.tensor([ids], device=device)
        for _ in range(limit):
            out = self.model(input_ids=step, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
            mask = allowed.clone()
            if eosp_after_first and new:
                mask[self.st.eosp] = True
            logits[~mask[: logits.shape[0]].to(logits.device)] = -math.inf
            token = self._pick(logits)
            new.append(token)
            if done(new):
                break
            step = torch.tensor([[token]], device=device)
        return new

    def _pick(self, logits: torch.Tensor) -> int:
        s = self.settings
        if s.temperature <= 0:
            return int(logits.argmax())
        logits = logits.cpu()
        if s.top_k > 0:
            logits[logits < logits.topk(min(s.top_k, logits.numel())).values[-1]] = -math.inf
        probs = torch.softmax(logits / s.temperature, dim=-1)
        order = probs.argsort(descending=True)
        keep = probs[order].cumsum(0) - probs[order] < s.top_p  # the top-p nucleus
        nucleus = torch.zeros_like(probs)
        nucleus[order[keep]] = probs[order[keep]]
        return int(torch.multinomial(nucleus, 1, generator=self.generator))


def _blank(fields: dict) -> dict:
    """Templates need every field; the answer's fields are empty in the question."""
    return {
        "text_instruction": "",
        "speech_instruction": [],
        "text_response": "",
        "speech_response": [],
        **fields,
    }

"""``speechgpt web``: talk to a SpeechGPT model in the browser (a Gradio app).

Record or upload a spoken question, or type one; choose whether the answer is spoken or
written. Each answer shows what the model heard (``[tq]``), its text answer (``[ta]``)
and a player for its spoken answer (``[ua]`` through the vocoder). Each browser tab is
its own conversation; ``Reset`` forgets it. Bad input is explained in the page.

The server binds to 127.0.0.1 unless ``--host`` says otherwise: the app has no login.
"""

from __future__ import annotations

import argparse
import itertools
import re
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from schemas import SAMPLE_RATE
from speechgpt import talk
from training.generate import Talker, TalkError, Turn, load_wave

if TYPE_CHECKING:
    import gradio as gr

TITLE = "SpeechGPT"
NO_INPUT = "Nothing to answer: record or upload a spoken question, or type one."
BOTH_INPUTS = "Give a spoken question or a typed one, not both: clear one of them."
MAX_UPLOAD = "50mb"  # a minute of 48 kHz stereo wav is 11 MB; talk refuses > 60 s anyway


class WebTalk:
    """One talker shared by every tab: each tab keeps its own history and swaps it in."""

    def __init__(self, talker: Talker, out_dir: Path):
        self.talker, self.out_dir = talker, out_dir
        self.lock = threading.Lock()  # the talker holds one history at a time
        self.count = itertools.count(1)

    def answer(
        self, audio: str | None, text: str | None, reply: str, history: list[list[int]]
    ) -> Turn:
        """One turn from the page's inputs; TalkError says what is wrong with them."""
        text = text or ""
        if audio and text.strip():
            raise TalkError(BOTH_INPUTS)
        if not audio and not text:
            raise TalkError(NO_INPUT)
        wave = load_wave(audio) if audio else None
        with self.lock:
            self.talker.history = history
            try:
                turn = self.talker.turn(text=None if audio else text, wave=wave, reply=reply)
            finally:
                self.talker.history = []
        if turn.audio is not None:
            turn.wav = self._write(turn)
        return turn

    def _write(self, turn: Turn) -> Path:
        import soundfile as sf

        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"answer-{next(self.count):04d}.wav"
        sf.write(path, turn.audio, SAMPLE_RATE)
        return path


def literal(text: str) -> str:
    """The model's words as they are: Markdown would turn ``*``, ``_``, ``#``… into markup."""
    return re.sub(r"([\\`*_{}\[\]()#+\-.!<>|~$])", r"\\\1", text) if text else "(nothing)"


def question_message(audio: str | None, text: str | None) -> dict:
    """The question's chat bubble: the recording itself (to replay it), or the typed text."""
    return {"role": "user", "content": {"path": audio} if audio else literal((text or "").strip())}


def answer_messages(turn: Turn) -> list[dict]:
    """The chat bubbles of one answer: transcript and text, then the spoken answer."""
    lines = [] if turn.transcript is None else [f"**[tq]** {literal(turn.transcript)}"]
    lines.append(f"**[ta]** {literal(turn.text)}")
    messages = [{"role": "assistant", "content": "\n\n".join(lines)}]
    if turn.wav is not None:
        messages.append({"role": "assistant", "content": {"path": str(turn.wav)}})
    return messages


def status_line(turn: Turn, reply: str) -> str:
    parts = [f"Answered in {turn.seconds:.1f} s."]
    if turn.audio is not None:
        parts.append(
            f"Spoken answer: {len(turn.units)} units, {len(turn.audio) / SAMPLE_RATE:.1f} s."
        )
    elif reply == "speech":
        parts.append("The model gave no speech units, so there is no spoken answer.")
    if turn.dropped:
        parts.append(f"Dropped the {turn.dropped} oldest turn(s) to fit the context.")
    return " ".join(parts)


def build_app(talker: Talker, out_dir: str | Path | None = None) -> gr.Blocks:
    """The page: inputs on the left, the conversation and a status line on the right."""
    import gradio as gr  # here, not at the top: it takes seconds to import

    out = Path(out_dir) if out_dir else Path(tempfile.mkdtemp(prefix="speechgpt-web-"))
    web = WebTalk(talker, out)

    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"# {TITLE}\nSpeak or type a question; the model answers in speech or text.")
        history = gr.State([])  # this tab's token history, for the model
        with gr.Row():
            with gr.Column(scale=1):
                audio = gr.Audio(
                    sources=["microphone", "upload"],
                    type="filepath",
                    label="Spoken question",
                    elem_id="question-audio",
                )
                text = gr.Textbox(label="Typed question", elem_id="question-text")
                reply = gr.Radio(
                    ["speech", "text"], value="speech", label="Reply in", elem_id="reply-mode"
                )
                with gr.Row():
                    send = gr.Button("Send", variant="primary", elem_id="send")
                    reset = gr.Button("Reset", elem_id="reset")
            with gr.Column(scale=2):
                chat = gr.Chatbot(
                    label="Conversation", elem_id="chat", height=480, latex_delimiters=[]
                )
                status = gr.Markdown(elem_id="status")

        def respond(audio_in, text_in, reply_in, messages, tokens):
            try:
                turn = web.answer(audio_in, text_in, reply_in, tokens)
            except TalkError as e:
                return messages, tokens, f"**Error:** {str(e).rstrip(': ')}", audio_in, text_in
            messages = [*messages, question_message(audio_in, text_in), *answer_messages(turn)]
            return messages, tokens, status_line(turn, reply_in), None, ""

        def forget():
            return [], [], "Conversation cleared.", None, ""

        outputs = [chat, history, status, audio, text]
        send.click(respond, [audio, text, reply, chat, history], outputs, concurrency_limit=1)
        text.submit(respond, [audio, text, reply, chat, history], outputs, concurrency_limit=1)
        reset.click(forget, None, outputs)
    return app


def run(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="speechgpt web",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    talk.add_model_arguments(parser)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve other machines")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--out", help="where to keep the spoken answers (default: a temp folder)")
    args = parser.parse_args(argv)
    talker = talk.load_talker(args)
    out = Path(args.out or tempfile.mkdtemp(prefix="speechgpt-web-")).resolve()
    app = build_app(talker, out)
    app.launch(
        server_name=args.host,
        server_port=args.port,
        allowed_paths=[str(out)],
        max_file_size=MAX_UPLOAD,
    )

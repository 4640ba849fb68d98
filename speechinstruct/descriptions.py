"""Task descriptions for cross-modal instructions (§3.1, Appendix A/B).

100 ASR and 100 TTS descriptions ship with the project; ``speechgpt descriptions``
regenerates them with the Appendix A prompts against any OpenAI-compatible endpoint.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from functools import cache
from importlib import resources
from pathlib import Path

TASKS = ("asr", "tts")
_REQUIREMENTS = """Here are the requirements:

1. These instructions should be to instruct someone to recognize the content of the following speech.
2. Try not to repeat the verb for each instruction to maximize diversity.
3. The language used for instruction also should be diverse. For example, you should combine questions with imperative instructions.
4. The type of instructions should be diverse.
5. The instructions should be in English.
6. The instructions should be 1 to 2 sentences long. Either an imperative sentence or a question is permitted.

List of 100 tasks:
"""  # noqa: E501
PROMPTS = {  # Appendix A, verbatim
    "asr": "You are asked to come up with a set of 100 diverse task instructions about automatic "
    "speech recognition, which is about recognizing speech.\n\n" + _REQUIREMENTS,
    "tts": "You are asked to come up with a set of 100 diverse task instructions about text to "
    "speech, which is about recognizing speech .\n\n" + _REQUIREMENTS,
}
_ITEM = re.compile(r"^\s*(?:\d+\s*[.):\-]|[-*•])\s*(?:\*\*)?\s*(.+?)\s*(?:\*\*)?\s*$")


@cache
def load(task: str) -> tuple[str, ...]:
    """The shipped descriptions of ``task`` (``asr`` or ``tts``)."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    text = resources.files("speechinstruct").joinpath("data", f"{task}_descriptions.txt")
    return tuple(line.strip() for line in text.read_text().splitlines() if line.strip())


def parse_list(reply: str) -> list[str]:
    """Items of a numbered or bulleted list, quotes and markup stripped."""
    items = []
    for line in reply.splitlines():
        match = _ITEM.match(line)
        if match:
            item = match.group(1).strip().strip('"“”').strip()
            if len(item.split()) >= 3:
                items.append(item)
    return items


def dedup(items: list[str]) -> list[str]:
    seen, out = set(), []
    for item in items:
        key = " ".join(re.sub(r"[^a-z0-9 ]", " ", item.lower()).split())
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out


def generate(
    task: str,
    model: str,
    base_url: str | None = None,
    count: int = 100,
    attempts: int = 5,
    temperature: float = 1.0,
) -> list[str]:
    """Ask the endpoint until ``count`` distinct descriptions are collected."""
    from openai import OpenAI, OpenAIError

    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        raise RuntimeError("OPENAI_API_KEY is not set")
    client = OpenAI(api_key=key, base_url=base_url, max_retries=2)
    items: list[str] = []
    for attempt in range(attempts):
        try:
            reply = client.chat.completions.create(
                model=model,
                temperature=temperature,
                messages=[{"role": "user", "content": PROMPTS[task]}],
            )
            items = dedup(items + parse_list(reply.choices[0].message.content or ""))
        except OpenAIError as e:  # the message never contains the key
            print(
                f"descriptions: attempt {attempt + 1} failed: {type(e).__name__}: {e}",
                file=sys.stderr,
            )
            time.sleep(min(30.0, 2.0**attempt))
        if len(items) >= count:
            return items[:count]
    raise RuntimeError(f"only {len(items)} distinct {task} descriptions after {attempts} attempts")


def run(argv: list[str] | None = None) -> list[str]:
    parser = argparse.ArgumentParser(prog="speechgpt descriptions", description=__doc__)
    parser.add_argument("--task", choices=TASKS, required=True)
    parser.add_argument("--model", required=True, help="chat model name, e.g. gpt-4")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: OpenAI's)")
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=100)
    args = parser.parse_args(argv)
    try:
        items = generate(args.task, args.model, args.base_url, args.count)
    except RuntimeError as e:
        parser.exit(1, f"speechgpt descriptions: {e}\n")
    Path(args.out).write_text("\n".join(items) + "\n")
    print(f"descriptions: wrote {len(items)} {args.task} descriptions to {args.out}")
    return items

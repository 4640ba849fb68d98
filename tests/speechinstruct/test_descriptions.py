"""``speechgpt descriptions`` against a local chat-completions server (tests/chat_double.py):
a test double for the OpenAI API, which cannot be reached here."""

import pytest

from speechinstruct import descriptions
from tests.chat_double import chat_server

SECRET = "sk-test-never-printed-123"


def numbered_lists(body: dict, n: int) -> str | None:
    """First a 500, then lists of 60 (mixed numbering styles, one repeat)."""
    if n == 1:
        return None
    start = 60 * (n - 2)
    lines = [
        f"{i + 1}. Please transcribe clip number {k} of the recording."
        if i % 2
        else f"{i + 1}) **Could you write down the words of item {k}?**"
        for i, k in enumerate(range(start, start + 60))
    ]
    repeat = "1. Please transcribe clip number 1 of the recording."
    return "Here are the tasks:\n" + "\n".join(lines) + "\n" + repeat


@pytest.fixture
def server():
    with chat_server(numbered_lists) as (url, calls):
        yield url, calls


def test_generates_100_distinct_with_retries(server, tmp_path, monkeypatch, capsys):
    url, calls = server
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "asr.txt"
    items = descriptions.run(
        ["--task", "asr", "--model", "gpt-4", "--base-url", url, "--out", str(out)]
    )
    lines = out.read_text().splitlines()
    assert lines == items and len(lines) == len(set(lines)) == 100
    assert lines[0] == "Could you write down the words of item 0?"
    assert lines[1] == "Please transcribe clip number 1 of the recording."
    assert len(calls) == 3  # a 500, then two lists of 60 (with one repeat)
    assert all(c["auth"] == f"Bearer {SECRET}" for c in calls)
    prompt = calls[-1]["body"]["messages"][0]["content"]
    assert prompt == descriptions.PROMPTS["asr"] and "automatic speech recognition" in prompt
    captured = capsys.readouterr()
    assert SECRET not in captured.out + captured.err


def test_missing_key_fails_clearly(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(SystemExit) as e:
        descriptions.run(["--task", "tts", "--model", "m", "--out", str(tmp_path / "x")])
    assert e.value.code == 1


def test_parse_list_and_shipped_sets():
    reply = '1. "Transcribe the audio, please."\n2) Say it\n- Write down what you hear now.\nnoise'
    assert descriptions.parse_list(reply) == [
        "Transcribe the audio, please.",
        "Write down what you hear now.",
    ]
    for task in descriptions.TASKS:
        shipped = descriptions.load(task)
        assert len(shipped) == len(descriptions.dedup(list(shipped))) == 100
        assert sum(d.endswith("?") for d in shipped) >= 30

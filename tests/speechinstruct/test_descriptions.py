"""``speechgpt descriptions`` against a local HTTP server that speaks the chat-completions
protocol: a test double for the OpenAI API, which cannot be reached here."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from speechinstruct import descriptions

SECRET = "sk-test-never-printed-123"


class FakeChat(BaseHTTPRequestHandler):
    calls: ClassVar[list[dict]] = []
    fail_first = True

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.calls.append({"auth": self.headers.get("Authorization"), "body": body})
        if FakeChat.fail_first:
            FakeChat.fail_first = False
            self.send_response(500)
            self.end_headers()
            return
        start = 60 * (len(FakeChat.calls) - 2)
        lines = [f"{i + 1}. Please transcribe clip number {n} of the recording." if i % 2
                 else f"{i + 1}) **Could you write down the words of item {n}?**"
                 for i, n in enumerate(range(start, start + 60))]  # fmt: skip
        content = (
            "Here are the tasks:\n"
            + "\n".join(lines)
            + "\n1. Please transcribe clip number 1 of the recording."
        )
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [{"index": 0, "finish_reason": "stop",
                              "message": {"role": "assistant", "content": content}}]}  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    FakeChat.calls, FakeChat.fail_first = [], True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_generates_100_distinct_with_retries(server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    out = tmp_path / "asr.txt"
    items = descriptions.run(["--task", "asr", "--model", "gpt-4", "--base-url", server,
                              "--out", str(out)])  # fmt: skip
    lines = out.read_text().splitlines()
    assert lines == items and len(lines) == len(set(lines)) == 100
    assert lines[0] == "Could you write down the words of item 0?"
    assert lines[1] == "Please transcribe clip number 1 of the recording."
    assert len(FakeChat.calls) == 3  # a 500, then two lists of 60 (with one repeat)
    assert all(c["auth"] == f"Bearer {SECRET}" for c in FakeChat.calls)
    prompt = FakeChat.calls[-1]["body"]["messages"][0]["content"]
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
        "Transcribe the audio, please.", "Write down what you hear now.",
    ]  # fmt: skip
    for task in descriptions.TASKS:
        shipped = descriptions.load(task)
        assert len(shipped) == len(descriptions.dedup(list(shipped))) == 100
        assert sum(d.endswith("?") for d in shipped) >= 30

"""``speechgpt eval`` on the tiny stage outputs; the judge is a local HTTP server speaking the
chat-completions protocol (a test double for the OpenAI API, which cannot be reached here)."""

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from training import evaluate


class Judge(BaseHTTPRequestHandler):
    prompts: list = []  # noqa: RUF012

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Judge.prompts.append(body["messages"][0]["content"])
        message = {"role": "assistant", "content": "My score is: 4"}
        choice = {"index": 0, "finish_reason": "stop", "message": message}
        reply = {"id": "j", "object": "chat.completion", "created": 0, "model": body["model"],
                 "choices": [choice]}  # fmt: skip
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def test_eval_reports_loss_wer_and_judge_scores(stages, published, judge_url, tmp_path):
    report = evaluate.run(["--model", stages[2], "--lora", stages[3], "--data", published,
                           "--max-samples", "2", "--max-new-tokens", "8",
                           "--judge-model", "judge", "--base-url", judge_url,
                           "--output", str(tmp_path / "eval.json")])  # fmt: skip
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    assert set(report["loss"]) <= {"cross_modal", "chain_of_modality"} and report["loss"]
    assert all(math.isfinite(v) and v > 0 for v in report["loss"].values())
    assert report["asr_wer"] >= 0
    assert report["chatgpt_score"] == {"S2SIF": 4.0, "S2TIF": 4.0, "T2SIF": 4.0, "T2TIF": 4.0}
    assert len(Judge.prompts) == 4 * 2
    assert Judge.prompts[0].startswith("You are evaluating a response")
    assert "[Instruction]: " in Judge.prompts[0] and "My score is: " in Judge.prompts[0]

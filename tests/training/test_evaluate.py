"""``speechgpt eval`` on the tiny stage outputs; the judge is a local chat-completions server
(tests/chat_double.py), a test double for the OpenAI API, which cannot be reached here."""

import json
import math

import pytest

from tests.chat_double import chat_server
from training import evaluate


@pytest.fixture
def judge():
    with chat_server(lambda body, n: "My score is: 4") as (url, calls):
        yield url, calls


def test_eval_reports_loss_wer_and_judge_scores(stages, published, judge, tmp_path):
    judge_url, calls = judge
    report = evaluate.run(
        [
            "--model",
            stages[2],
            "--lora",
            stages[3],
            "--data",
            published,
            "--max-samples",
            "2",
            "--max-new-tokens",
            "8",
            "--judge-model",
            "judge",
            "--base-url",
            judge_url,
            "--output",
            str(tmp_path / "eval.json"),
        ]
    )
    assert json.loads((tmp_path / "eval.json").read_text()) == report
    assert set(report["loss"]) <= {"cross_modal", "chain_of_modality"} and report["loss"]
    assert all(math.isfinite(v) and v > 0 for v in report["loss"].values())
    assert report["asr_wer"] >= 0
    assert report["chatgpt_score"] == {"S2SIF": 4.0, "S2TIF": 4.0, "T2SIF": 4.0, "T2TIF": 4.0}
    prompts = [c["body"]["messages"][0]["content"] for c in calls]
    assert len(prompts) == 4 * 2
    assert prompts[0].startswith("You are evaluating a response")
    assert "[Instruction]: " in prompts[0] and "My score is: " in prompts[0]

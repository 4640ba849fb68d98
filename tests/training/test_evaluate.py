"""``speechgpt eval``: each number it reports against one computed here. The models, the
tokenizer and the data are real; the judge is a local chat-completions server
(tests/chat_double.py), a test double for the OpenAI API, which cannot be reached here,
and it replies from a script."""

import json
import shutil

import pyarrow.parquet as pq
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechinstruct.t2u.model import normalize_text
from speechinstruct.templates import CHAIN_OF_MODALITY, CROSS_MODAL, parse, segments
from tests.chat_double import chat_server
from training import evaluate
from training.data import load_split, prompt_head
from training.tokens import SpeechTokenizer

ROWS = 2  # --max-samples: rows per held-out config and eval rows per task
JUDGED = {  # task: the judge's replies to the two eval rows, and the score they make
    "S2SIF": (["My score is: 5", "My score is: 2"], 3.5),
    "S2TIF": (["My score is: 3", "I cannot rate this response."], 3.0),  # unparseable: left out
    "T2SIF": (["My score is:1", "My score is: 4"], 2.5),
    "T2TIF": (["No score.", "My score is: five"], None),  # nothing to average
}


@torch.no_grad()
def _answer_nll(model, st: SpeechTokenizer, row: dict, names: tuple[str, ...]) -> tuple:
    """The summed cross-entropy of a row's answer tokens (its response and ``</s>``) given
    all before them, and how many they are: the prompt is context, never a target (eq. 4)."""
    name, fields = parse(row["prompt"], row["response"], names)
    prompt, response = segments(name, **fields)
    asked = prompt_head(st) + st.encode(prompt)
    said = [*st.encode(response), st.eos]
    logits = model(input_ids=torch.tensor([asked + said])).logits[0].double()
    # the logits at position i predict token i + 1: the answer's from the prompt's last on
    logp = torch.log_softmax(logits[len(asked) - 1 : -1], dim=-1)
    return -logp[torch.arange(len(said)), torch.tensor(said)].sum().item(), len(said)


def test_eval_loss_is_the_answer_tokens_cross_entropy_and_the_score_the_judges_mean(
    stages, published, tmp_path
):
    replies = [reply for task_replies, _ in JUDGED.values() for reply in task_replies]
    with chat_server(lambda body, n: replies[n - 1]) as (judge_url, calls):
        report = evaluate.run(
            [
                "--model",
                stages[2],
                "--lora",
                stages[3],
                "--data",
                published,
                "--max-samples",
                str(ROWS),
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

    model = AutoModelForCausalLM.from_pretrained(stages[2])
    model = PeftModel.from_pretrained(model, stages[3]).eval()
    st = SpeechTokenizer(AutoTokenizer.from_pretrained(stages[3]))
    expected = {}
    for config, names in (("cross_modal", CROSS_MODAL), ("chain_of_modality", CHAIN_OF_MODALITY)):
        rows = load_split(published, config, "validation").select(range(ROWS))
        scored = [_answer_nll(model, st, row, names) for row in rows]
        # a mean over the answer tokens of all rows, not over rows
        expected[config] = sum(nll for nll, _ in scored) / sum(n for _, n in scored)
    assert report["loss"] == pytest.approx(expected, rel=1e-5)

    assert report["chatgpt_score"] == {task: score for task, (_, score) in JUDGED.items()}
    instructions = load_split(published, "eval", "test")["text_instruction"][:ROWS]
    asked = [c["body"]["messages"][0]["content"] for c in calls]
    assert len(asked) == len(replies)  # per task, each eval row once, in order
    for i, prompt in enumerate(asked):
        assert prompt.startswith("You are evaluating a response")
        assert f"[Instruction]: {instructions[i % ROWS]}\n***\n[Response]: " in prompt
        assert prompt.endswith('write out your score in this format: "My score is: "\n')
    assert all(c["body"]["model"] == "judge" for c in calls)


@torch.no_grad()
def _greedy_transcript(model, st: SpeechTokenizer, units: list[int], max_new_tokens: int) -> str:
    """What the model answers to eval's ASR question about ``units``, decoded greedily here:
    the words before ``<eoa>`` (or ``</s>``), normalized as references are."""
    fields = {"description": evaluate.ASR_DESCRIPTION, "speech": units, "text": ""}
    ids = prompt_head(st) + st.encode(segments("asr", **fields)[0])
    stops, new = (st.tok.convert_tokens_to_ids("<eoa>"), st.eos), []
    while len(new) < max_new_tokens and not (new and new[-1] in stops):
        new.append(int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax()))
    return normalize_text(st.tok.decode([i for i in new if i not in stops]))


def test_eval_asr_wer_of_known_answers(parrot, tmp_path):
    """Two eval rows with the speech of the parrot's first ASR row: the first's reference is
    the model's answer (no error), the second's that answer with its first word wrong and a
    word more (two errors)."""
    (learned, _) = (r for r in parrot["rows"] if r["task"] == "asr")
    model = AutoModelForCausalLM.from_pretrained(parrot["model"]).eval()
    st = SpeechTokenizer(AutoTokenizer.from_pretrained(parrot["model"]))
    words = _greedy_transcript(model, st, learned["units"], 64).split()
    assert len(words) >= 2, words  # it learned this row's text (test_learning.py)
    references = [" ".join(words), " ".join(["zebra", *words[1:], "again"])]

    data = tmp_path / "asr_known"  # a name no other dataset folder has: see test_data.py
    shutil.copytree(parrot["data"], data)
    (path,) = (data / "data" / "eval").glob("test-*.parquet")
    table = pq.read_table(path)
    rows = table.to_pylist()[:ROWS]
    for row, reference in zip(rows, references, strict=True):
        row["speech_instruction"], row["text_instruction"] = learned["units"], reference
    pq.write_table(table.from_pylist(rows, schema=table.schema), path)
    report = evaluate.run(
        [
            "--model",
            parrot["model"],
            "--data",
            str(data),
            "--max-samples",
            str(ROWS),
            "--max-new-tokens",
            "64",
            "--output",
            str(tmp_path / "eval.json"),
        ]
    )
    assert report["asr_examples"] == [
        {"reference": reference, "hypothesis": " ".join(words)} for reference in references
    ]
    # errors over all reference words, not a mean over rows (which would be 1 / (n + 1))
    assert report["asr_wer"] == pytest.approx(2 / (2 * len(words) + 1))
    assert "chatgpt_score" not in report  # no --judge-model

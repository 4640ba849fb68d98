"""``speechgpt eval``: each number it reports against one computed here. The models, the
tokenizer and the data are real; the judge is a local chat-completions server
(tests/chat_double.py), a test double for the OpenAI API, which cannot be reached here,
and it replies from a script."""

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechinstruct.t2u.model import normalize_text
from speechinstruct.templates import CHAIN_OF_MODALITY, CROSS_MODAL, parse, parse_answer, segments
from tests.chat_double import chat_server
from training import evaluate
from training.data import load_split, prompt_head
from training.tokens import SpeechTokenizer
from vocoder import load_vocoder

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
def _greedy(model, st: SpeechTokenizer, name: str, fields: dict, max_new_tokens: int) -> list:
    """The model's answer to template ``name``'s question, decoded greedily here, one full
    forward pass a token: the new ids, up to ``<eoa>`` or ``</s>``."""
    ids = prompt_head(st) + st.encode(segments(name, **fields)[0])
    stops, new = (st.tok.convert_tokens_to_ids("<eoa>"), st.eos), []
    while len(new) < max_new_tokens and not (new and new[-1] in stops):
        new.append(int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax()))
    return new


def _greedy_transcript(model, st: SpeechTokenizer, units: list[int], max_new_tokens: int) -> str:
    """What the model answers to eval's ASR question about ``units``: the words before
    ``<eoa>`` (or ``</s>``), normalized as references are."""
    fields = {"description": evaluate.ASR_DESCRIPTION, "speech": units, "text": ""}
    new = _greedy(model, st, "asr", fields, max_new_tokens)
    stops = (st.tok.convert_tokens_to_ids("<eoa>"), st.eos)
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


class Ears:
    """An ASR double that says which wave it heard (its number and length), and keeps it:
    the test then knows which words come from which spoken answer."""

    def __init__(self):
        self.waves = []

    def __call__(self, wave) -> str:
        self.waves.append(wave)
        return f"wave {len(self.waves)} of {len(wave)} samples"


SPOKEN = 240  # --max-new-tokens: room for a learned spoken answer (under 200 units)


def test_s2sif_judges_what_an_asr_hears_of_the_spoken_answer(
    spoken_parrot, baseline_vocoder, tmp_path
):
    """``--task s2sif --prompting standard --vocoder V``: each eval row's spoken question
    asked with Appendix E's ``std_s2s`` template, the greedy answer's ``[ua]`` units spoken
    by the vocoder, the ASR's words given to the judge; the score is the judges' mean."""
    ears, replies = Ears(), ["My score is: 4", "My score is: 1"]
    argv = ["--task", "s2sif", "--prompting", "standard", "--vocoder", baseline_vocoder]
    argv += ["--model", spoken_parrot["model"], "--data", spoken_parrot["data"]]
    argv += ["--max-samples", str(ROWS), "--max-new-tokens", str(SPOKEN)]
    with chat_server(lambda body, n: replies[n - 1]) as (judge_url, calls):
        argv += ["--judge-model", "judge", "--base-url", judge_url]
        report = evaluate.run([*argv, "--output", str(tmp_path / "s2sif.json")], asr=ears)
    assert report["chatgpt_score"] == {"S2SIF": 2.5} and report["prompting"] == "standard"
    assert report["judged_spoken_answers_by"] == "asr" and "loss" not in report

    model = AutoModelForCausalLM.from_pretrained(spoken_parrot["model"]).eval()
    st = SpeechTokenizer(AutoTokenizer.from_pretrained(spoken_parrot["model"]))
    vocoder = load_vocoder(baseline_vocoder)
    expected, spoken = [], []
    for row in spoken_parrot["rows"]:
        fields = {"text_instruction": "", "text_response": "", "speech_response": []}
        fields["speech_instruction"] = row["speech_instruction"]
        new = _greedy(model, st, "std_s2s", fields, SPOKEN)
        said = st.tok.decode(new, skip_special_tokens=False)
        assert said.startswith("[ua] <sosp>"), said[:80]  # it learned to answer in speech
        spoken.append(vocoder.synthesize(parse_answer(said)["ua"]))
        expected.append(f"wave {len(spoken)} of {len(spoken[-1])} samples")
    assert len(ears.waves) == len(spoken)
    for heard, wave in zip(ears.waves, spoken, strict=True):
        np.testing.assert_array_equal(heard, wave)
    assert [j["response"] for j in report["judged"]["S2SIF"]] == expected
    assert [j["score"] for j in report["judged"]["S2SIF"]] == [4.0, 1.0]
    for call, response in zip(calls, expected, strict=True):
        assert f"[Response]: {response}\n***" in call["body"]["messages"][0]["content"]


def test_without_a_vocoder_com_answers_are_judged_by_their_text(stages, published, tmp_path):
    """CoM answers carry their words in ``[ta]``: with no ``--vocoder`` that text is judged."""
    with chat_server(lambda body, n: "My score is: 3") as (judge_url, calls):
        argv = ["--task", "t2sif", "--model", stages[2], "--lora", stages[3], "--data", published]
        argv += ["--max-samples", "1", "--max-new-tokens", "24", "--judge-model", "judge"]
        report = evaluate.run([*argv, "--base-url", judge_url, "--output", str(tmp_path / "o")])
    assert report["chatgpt_score"] == {"T2SIF": 3.0}
    assert report["judged_spoken_answers_by"] == "ta"
    model = AutoModelForCausalLM.from_pretrained(stages[2])
    model = PeftModel.from_pretrained(model, stages[3]).eval()
    st = SpeechTokenizer(AutoTokenizer.from_pretrained(stages[3]))
    row = load_split(published, "eval", "test")[0]
    fields = {"text_instruction": row["text_instruction"], "text_response": ""}
    fields |= {"speech_instruction": [], "speech_response": []}
    said = st.tok.decode(_greedy(model, st, "t2s", fields, 24), skip_special_tokens=False)
    (judged,) = report["judged"]["T2SIF"]
    assert judged["response"] == parse_answer(said).get("ta", "")
    assert f"[Response]: {judged['response']}\n***" in calls[0]["body"]["messages"][0]["content"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "s2sif"], "--task s2sif is a ChatGPT Score: it needs --judge-model"),
        (
            ["--task", "t2sif", "--prompting", "standard", "--judge-model", "J"],
            "T2SIF under --prompting standard answer in speech alone: give --vocoder",
        ),
        (
            ["--prompting", "standard", "--judge-model", "J"],
            "S2SIF, T2SIF under --prompting standard answer in speech alone",
        ),
    ],
)
def test_single_tasks_say_what_they_need(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate.run(["--model", "M", "--data", "D", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err

"""``speechgpt eval --task continuation`` (§6.2's ASR-PPL) with the tiny stage-1 and stage-2
models, MFCC units of real TTS speech, the baseline vocoder and the real pocketsphinx; the
PPL model is the tiny init-model Llama taught one sentence here. Every number the report
gives is recomputed: the prompts from the shards, the PPLs from the LM's logits."""

import json
import math
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from speechinstruct.units import reduce
from training import continuation, eval_speech, evaluate
from training.generate import Settings, Talker
from training.model import load_for_inference
from training.tokens import SpeechTokenizer
from vocoder import load_vocoder

SENTENCE = "the birch canoe slid on the smooth planks"
SCRAMBLED = "planks the on smooth slid canoe birch the"
SAMPLES, MAX_UNITS = 2, 30
PROMPT_FRAMES = 150  # 3 s at 50 unit frames a second


@pytest.fixture(scope="module")
def sentence_lm(stages, tmp_path_factory) -> str:
    """init-model's tiny Llama (text only, BPE) after 30 steps on ``SENTENCE``."""
    folder = tmp_path_factory.mktemp("sentence_lm")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(stages["base"])
    tokenizer = AutoTokenizer.from_pretrained(stages["base"])
    ids = [tokenizer.bos_token_id, *tokenizer(SENTENCE, add_special_tokens=False)["input_ids"]]
    x = torch.tensor([ids])
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        model(input_ids=x, labels=x).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _ppl_by_hand(folder: str, text: str) -> float:
    """exp of the mean −log p of the text's tokens, each after ``<s>`` and those before it."""
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.bos_token == "<s>"
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logp = torch.log_softmax(logits[:-1], dim=-1)  # position i predicts token i + 1
    nll = -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])]
    return math.exp(nll.mean().item())


def _first_long_utterances(unit_dirs: list[str], n: int) -> list[tuple[str, list[int]]]:
    """The ``n`` first ids of utterances longer than 3 s, each with the reduced units of its
    first 150 frames, read from the shards' parquet here."""
    rows = []
    for folder in unit_dirs:
        for shard in Path(folder, "units").glob("*.parquet"):
            rows += pq.read_table(shard, columns=["id", "units", "durations"]).to_pylist()
    out = []
    for row in sorted(rows, key=lambda r: r["id"]):
        frames = [u for u, d in zip(row["units"], row["durations"], strict=True) for _ in range(d)]
        if len(frames) > PROMPT_FRAMES:
            out.append((row["id"], reduce(frames[:PROMPT_FRAMES])[0].tolist()))
    return out[:n]


@pytest.fixture(scope="module")
def reports(stages, made, baseline_vocoder, sentence_lm, tmp_path_factory) -> dict:
    """The continuation report of stage 1 and of stage 2 on the same prompts, and each
    ``(wave, text)`` pocketsphinx was given and heard."""
    out, transcribe = {}, eval_speech.Transcriber.__call__
    for stage in (1, 2):
        folder = tmp_path_factory.mktemp(f"continuation{stage}")
        heard = []

        def recorded(self, wave, heard=heard):
            heard.append((np.array(wave), transcribe(self, wave)))
            return heard[-1][1]

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(eval_speech.Transcriber, "__call__", recorded)
            report = evaluate.run(
                [
                    "--task",
                    "continuation",
                    "--model",
                    stages[stage],
                    "--units",
                    *made["units"],
                    "--no-heldout",  # the sample corpora's held-out clips are all under 3 s
                    "--vocoder",
                    baseline_vocoder,
                    "--ppl-model",
                    sentence_lm,
                    "--max-samples",
                    str(SAMPLES),
                    "--max-units",
                    str(MAX_UNITS),
                    "--output",
                    str(folder),
                ]
            )
        out[stage] = {"report": report, "heard": heard, "folder": folder}
    return out


def test_the_prompt_is_the_reduced_units_of_the_first_3_seconds():
    # 210 frames: 5×100, 7×40, 5×20, 9×50; the first 150 are 5×100, 7×40, 5×10
    assert continuation.prompt_units([5, 7, 5, 9], [100, 40, 20, 50]) == [5, 7, 5]
    assert continuation.prompt_units([1, 2], [100, 51]) == [1, 2]
    assert continuation.prompt_units([1, 2], [100, 50]) is None  # nothing left to continue
    assert continuation.prompt_units([1, 2, 3], [60, 40, 11], seconds=2) == [1, 2]


def test_a_continuation_follows_sosp_and_the_prompt_with_unit_tokens_only(stages):
    """The model is first given ``<sosp>`` + the prompt's unit tokens (no ``<eosp>``, no
    BOS); greedy, the continuation is what full forward passes give by hand when each step
    takes the best unit token (or ``<eosp>`` once one unit is out)."""
    model, tokenizer = load_for_inference(stages[1], device="cpu")
    st = SpeechTokenizer(tokenizer)
    prompt = [3, 1, 4, 1, 5, 9, 2, 6]
    ids, new = [st.sosp, *(st.unit0 + u for u in prompt)], []
    with torch.no_grad():
        for _ in range(8):
            logits = model(input_ids=torch.tensor([ids + new])).logits[0, -1]
            allowed = list(range(st.unit0, st.unit0 + st.k)) + ([st.eosp] if new else [])
            new.append(allowed[int(logits[allowed].argmax())])
            if new[-1] == st.eosp:
                break
    given, forward = [], model.forward

    def recorded(*args, **kwargs):
        given.append(kwargs["input_ids"][0].tolist())
        return forward(*args, **kwargs)

    model.forward = recorded
    talker = Talker(model, tokenizer, None, None, Settings(max_units=8, temperature=0.0))
    assert talker.continue_units(prompt) == [i - st.unit0 for i in new if i != st.eosp]
    assert given[0] == ids


def test_empty_transcripts_are_counted_and_left_out_of_the_mean(tmp_path):
    rows = [{"ppl": 10.0}, {"ppl": None}, {"ppl": 30.0}]
    assert continuation.summarize(rows) == {
        "asr_ppl": 20.0,
        "samples": 3,
        "transcribed": 2,
        "empty_transcripts": 1,
    }
    assert continuation.summarize([{"ppl": None}])["asr_ppl"] is None
    continuation.plot([{"ppl": None}], tmp_path / "none.png", "nothing heard")
    assert (tmp_path / "none.png").read_bytes()[:4] == b"\x89PNG"


def test_perplexity_is_exp_of_the_mean_token_nll(sentence_lm):
    ppl = continuation.Perplexity.load(sentence_lm)
    known, scrambled = ppl(SENTENCE), ppl(SCRAMBLED)
    assert known == pytest.approx(_ppl_by_hand(sentence_lm, SENTENCE), rel=1e-4)
    assert scrambled == pytest.approx(_ppl_by_hand(sentence_lm, SCRAMBLED), rel=1e-4)
    assert 1.0 <= known < 2.0 < 10 * known < scrambled  # the LM learned the sentence
    assert ppl("") is None and ppl("  ") is None


def test_the_report_scores_what_pocketsphinx_heard_of_each_continuation(
    reports, made, baseline_vocoder, sentence_lm
):
    run = reports[1]
    report, heard = run["report"], run["heard"]
    written = json.loads((run["folder"] / "continuation.json").read_text())
    assert written == json.loads(json.dumps(report))
    assert (run["folder"] / "continuation.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    expected = _first_long_utterances(made["units"], SAMPLES)
    assert [(r["id"], r["prompt_units"]) for r in report["rows"]] == expected
    vocoder = load_vocoder(baseline_vocoder)
    assert len(heard) == SAMPLES
    for row, (wave, text) in zip(report["rows"], heard, strict=True):
        units = row["continuation_units"]
        assert 1 <= len(units) <= MAX_UNITS and all(0 <= u < 16 for u in units)
        # pocketsphinx heard the continuation alone, as the vocoder speaks it
        np.testing.assert_array_equal(wave, vocoder.synthesize(units))
        assert row["transcript"] == text.strip()
        if text.strip():
            assert row["ppl"] == pytest.approx(_ppl_by_hand(sentence_lm, text), rel=1e-4)
        else:
            assert row["ppl"] is None
    scored = [r["ppl"] for r in report["rows"] if r["ppl"] is not None]
    assert scored, "pocketsphinx heard nothing in any continuation"
    assert math.isfinite(report["asr_ppl"])
    assert report["asr_ppl"] == pytest.approx(sum(scored) / len(scored))
    assert report["samples"] == SAMPLES
    assert report["transcribed"] + report["empty_transcripts"] == SAMPLES
    assert report["transcribed"] == len(scored)
    assert report["settings"] == {
        "max_units": MAX_UNITS,
        "temperature": 0.7,
        "top_p": 0.8,
        "top_k": 50,
        "seed": 0,
    }


def test_another_model_continues_the_same_prompts_differently(reports):
    one, two = (reports[s]["report"] for s in (1, 2))
    assert [r["prompt_units"] for r in one["rows"]] == [r["prompt_units"] for r in two["rows"]]
    assert [r["continuation_units"] for r in one["rows"]] != [
        r["continuation_units"] for r in two["rows"]
    ]
    assert one["asr_ppl"] != two["asr_ppl"]


CONTINUE = ["--task", "continuation"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*CONTINUE, "--vocoder", "V", "--ppl-model", "L"], "needs --units"),
        ([*CONTINUE, "--units", "U", "--ppl-model", "L"], "needs --vocoder"),
        ([*CONTINUE, "--units", "U", "--vocoder", "V"], "needs --ppl-model"),
        (
            [*CONTINUE, "--units", "U", "--vocoder", "V", "--ppl-model", "L", "--data", "D"],
            "--data is not used by --task continuation",
        ),
        ([], "--task instruction needs --data"),
        (["--data", "D", "--units", "U"], "--units is for --task continuation"),
    ],
)
def test_eval_says_which_flags_each_task_needs(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        evaluate.run(["--model", "M", *argv])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_no_prompt_when_every_held_out_utterance_is_short(made, stages, baseline_vocoder, tmp_path):
    with pytest.raises(ValueError, match="no utterance in --units is longer than 3 s"):
        evaluate.run(
            [
                *CONTINUE,
                *("--model", stages[1], "--vocoder", baseline_vocoder),
                *("--ppl-model", stages["base"], "--units", *made["units"]),
                *("--max-samples", "1", "--max-units", "1", "--output", str(tmp_path)),
            ]
        )

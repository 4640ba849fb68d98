"""``speechgpt eval``: held-out loss per config, ASR word error rate, and (given an
OpenAI-compatible endpoint) the ChatGPT Score of Appendix F on S2SIF, S2TIF, T2SIF, T2TIF;
``--task s2sif`` (or ``s2tif``, ``t2sif``, ``t2tif``) scores that task alone, the numbers of
§6.1's Table 2 and §6.3's Figure 4; with ``--task continuation``, the speech continuation
of §6.2 scored by ASR-PPL (``training/continuation.py``).

The model is asked with chain-of-modality prompting (Appendix C) or, with ``--prompting
standard``, Appendix E's templates. A spoken answer is judged by what an ASR hears of it
(§5.3): with ``--vocoder``, its ``[ua]`` units are spoken and pocketsphinx writes them down;
without one, a chain-of-modality answer is judged by its ``[ta]`` text."""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import torch

from speechinstruct import storage
from speechinstruct.instructions import FORMATS, PROMPTING
from speechinstruct.t2u.model import normalize_text
from speechinstruct.templates import CROSS_MODAL, parse_answer, segments
from training import continuation, released
from training import data as stage_data
from training.model import STYLES, add_device_arguments, load_for_inference, prompt_style
from training.tokens import SpeechTokenizer

ASR_DESCRIPTION = "Can you transcribe the speech into a written format?"
TASKS = {"S2SIF": "s2s", "S2TIF": "s2t", "T2SIF": "t2s", "T2TIF": "t2t"}
SPOKEN_ANSWERS = ("s2s", "t2s")
SINGLE = {task.lower(): name for task, name in TASKS.items()}  # --task s2sif …
JUDGE_PROMPT = """You are evaluating a response that has been submitted for an instruction, using a specific set of standards. Below is the data:
[BEGIN DATA]
***
[Instruction]: {inst}
***
[Response]: {resp}
***
[Criterion]: helpfulness:
"1": "Not helpful - The generated text is completely irrelevant, unclear, or incomplete. It does not provide any useful information to the user."
"2": "Somewhat helpful - The generated text has some relevance to the user's question, but it may be unclear or incomplete. It provides only partial information, or the information provided may not be useful for the user's needs."
"3": "Moderately helpful - The generated text is relevant to the user's question, and it provides a clear and complete answer. However, it may lack detail or explanation that would be helpful for the user."
"4": "Helpful - The generated text is quite relevant to the user's question, and it provides a clear, complete, and detailed answer. It offers additional information or explanations that are useful for the user. However, some of the points of the response are somewhat repetitive or could be combined for greater clarity and concision"
"5": "Very helpful - The generated text is highly relevant to the user's question, and it provides a clear, complete, and detailed answer. It offers additional information, explanations, or analogies that are not only useful but also insightful and valuable to the user. However, the structured of the response is not well-organized and there is no clear progression or logical sequence of different points in the response."
***
[END DATA]
Does the response meet the criterion? You should only write out your score in this format: "My score is: "
"""  # noqa: E501  (Appendix F, verbatim)


def heldout_samples(
    rows, tokenizer: SpeechTokenizer, names: tuple[str, ...], released_tokenizer=None
) -> list:
    """``(ids, labels)`` of the rows that parse (a held-out set is small: kept in memory);
    with a ``released_tokenizer`` (``released.ReleasedTokenizer``) the rows are in the
    released format."""
    head, out = stage_data.prompt_head(tokenizer), []
    for row in rows:
        try:
            if released_tokenizer is None:
                ids, n = stage_data.instruction_sample(row, tokenizer, names, head)
            else:
                ids, n = stage_data.released_sample(row, tokenizer, released_tokenizer)
        except stage_data.BadRow:
            continue
        out.append((ids, stage_data.labels(ids, n)))
    return out


@torch.inference_mode()
def heldout_loss(model, samples: list) -> float:
    total, count = 0.0, 0
    for ids, labels in samples:
        inputs = torch.tensor([ids], device=model.device)
        targets = torch.as_tensor(labels, device=model.device)[None]
        out = model(input_ids=inputs, labels=targets)
        n = int((targets[0, 1:] != stage_data.IGNORE).sum())  # the shifted targets it scores
        total, count = total + out.loss.item() * n, count + n
    return total / count if count else math.nan


def template_name(name: str, prompting: str) -> str:
    """The template that asks for format ``name`` (``s2s``…) under ``prompting``."""
    if name not in FORMATS:
        return name  # asr, tts: cross-modal instructions have one template
    return dict(zip(FORMATS, PROMPTING[prompting], strict=True))[name]


def prompt_ids(
    tokenizer: SpeechTokenizer,
    name: str,
    fields: dict,
    released_tokenizer=None,
    prompting: str = "com",
) -> list[int]:
    """The question of template ``name`` under ``prompting``: ours, or as the released model
    was asked (with a ``released_tokenizer``, a ``released.ReleasedTokenizer``)."""
    if released_tokenizer is None:
        prompt, _ = segments(template_name(name, prompting), **fields)
        return stage_data.prompt_head(tokenizer) + tokenizer.encode(prompt)
    if name == "asr":  # the released cross-modal format
        pieces = released.cross_modal(fields["description"], ("speech", fields["speech"]))
    elif name in ("s2s", "s2t"):
        pieces = released.question(units=fields["speech_instruction"])
    else:
        pieces = released.question(text=fields["text_instruction"])
    return released.head(released_tokenizer) + released_tokenizer.encode(pieces)


@torch.inference_mode()
def answer(
    model,
    tokenizer: SpeechTokenizer,
    name: str,
    fields: dict,
    max_new_tokens: int,
    released_tokenizer=None,
    prompting: str = "com",
) -> str:
    """The greedy answer, up to and including ``<eoa>`` (a token, or pieces when the model
    is the released one)."""
    ids = prompt_ids(tokenizer, name, fields, released_tokenizer, prompting)
    if released_tokenizer is None:
        stop = {"eos_token_id": [tokenizer.tok.convert_tokens_to_ids("<eoa>"), tokenizer.eos]}
    else:
        stop = {
            "eos_token_id": tokenizer.eos,
            "stop_strings": [released.EOA],
            "tokenizer": tokenizer.tok,
        }
    out = model.generate(
        torch.tensor([ids], device=model.device),
        max_new_tokens=max_new_tokens,
        do_sample=False,
        pad_token_id=tokenizer.eos,
        **stop,
    )
    return tokenizer.tok.decode(out[0, len(ids) :], skip_special_tokens=False)


class SpokenAnswers:
    """What an ASR hears of a spoken answer's units: the vocoder speaks them, pocketsphinx
    (or any ``asr``: wave → text) writes them down; no units, no words."""

    def __init__(self, vocoder, asr=None):
        if asr is None:
            from training.eval_speech import Transcriber

            asr = Transcriber()
        self.vocoder, self.asr = vocoder, asr

    def __call__(self, units: list[int]) -> str:
        return self.asr(self.vocoder.synthesize(units)) if units else ""


def judge(client, model: str, inst: str, resp: str) -> float | None:
    reply = client.chat.completions.create(
        model=model,
        temperature=0,
        messages=[{"role": "user", "content": JUDGE_PROMPT.format(inst=inst, resp=resp)}],
    )
    match = re.search(r"My score is:\s*([1-5])", reply.choices[0].message.content or "")
    return float(match.group(1)) if match else None


def chatgpt_scores(
    tasks: dict[str, str], rows, ask, spoken, client, judge_model: str
) -> tuple[dict, dict]:
    """Appendix F's mean score per task over the eval ``rows`` (a reply the judge gives no
    score in is left out; no scores, ``None``) and what was judged, row by row.

    ``ask(name, fields)`` is the model's answer parsed (``tq``/``ta``/``ua``); ``spoken``
    turns ``[ua]`` units into words, or is ``None`` to judge a spoken answer by its ``[ta]``.
    """
    scores, judged = {}, {}
    for task, name in tasks.items():
        got, judged[task] = [], []
        for row in rows:
            fields = {k: row[k] for k in ("text_instruction", "speech_instruction")}
            parts = ask(name, fields | {"text_response": "", "speech_response": []})
            heard = spoken is not None and name in SPOKEN_ANSWERS
            said = spoken(parts.get("ua", [])) if heard else parts.get("ta", "")
            score = judge(client, judge_model, row["text_instruction"], said)
            judged[task].append(
                {"id": row["id"], "instruction": row["text_instruction"], "response": said}
                | {"score": score}
            )
            if score is not None:
                got.append(score)
        scores[task] = sum(got) / len(got) if got else None
    return scores, judged


def run(argv: list[str] | None = None, asr=None) -> dict:
    """``speechgpt eval`` (``asr``: what hears spoken answers, pocketsphinx unless given)."""
    parser = argparse.ArgumentParser(prog="speechgpt eval", description=__doc__)
    parser.add_argument(
        "--task",
        choices=("instruction", *SINGLE, "continuation"),
        default="instruction",
        help="instruction: held-out loss, ASR WER, ChatGPT Score (the default); "
        "s2sif, s2tif, t2sif, t2tif: that task's ChatGPT Score alone (needs --judge-model); "
        "continuation: §6.2's ASR-PPL",
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--lora", help="a stage-3 adapter on top of --model")
    parser.add_argument(
        "--max-samples",
        type=int,
        help="instruction: rows per config and task (default 50); "
        "continuation: utterances (default 100)",
    )
    parser.add_argument(
        "--output",
        help="the report's path (default: beside the model, eval.json or eval_TASK_PROMPTING"
        ".json); with --task continuation, the folder for continuation.json and .png",
    )
    parser.add_argument(
        "--vocoder",
        help="a vocoder folder: speaks continuations, and spoken answers for the judge",
    )
    add_device_arguments(parser)
    group = parser.add_argument_group("--task instruction and the single tasks")
    group.add_argument("--data", help="a published SpeechInstruct dataset (needed)")
    group.add_argument("--max-new-tokens", type=int, help="default 256")
    group.add_argument("--judge-model", help="chat model for the ChatGPT Score (Appendix F)")
    group.add_argument("--base-url", help="an OpenAI-compatible endpoint for the judge")
    group.add_argument(
        "--prompt-style",
        choices=STYLES,
        help="how to ask: paper or released (default: what the model records)",
    )
    group.add_argument(
        "--prompting",
        choices=sorted(PROMPTING),
        help="com: chain-of-modality (Appendix C, the default); standard: Appendix E's "
        "templates (§6.1); spoken answers under standard prompting need --vocoder",
    )
    continuation.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.task == "continuation":
        continuation.check(args, parser)
        return continuation.run(args, asr)
    if args.data is None:
        parser.error(f"--task {args.task} needs --data")
    for flag in ("units", "ppl_model"):
        if getattr(args, flag) is not None:
            parser.error(f"--{flag.replace('_', '-')} is for --task continuation")
    if args.task != "instruction" and args.judge_model is None:
        parser.error(f"--task {args.task} is a ChatGPT Score: it needs --judge-model")
    tasks = TASKS if args.task == "instruction" else {args.task.upper(): SINGLE[args.task]}
    prompting = args.prompting or "com"
    if prompting == "standard" and args.vocoder is None and args.judge_model:
        spoken = [task for task, name in tasks.items() if name in SPOKEN_ANSWERS]
        if spoken:
            parser.error(
                f"{', '.join(spoken)} under --prompting standard answer in speech alone: "
                "give --vocoder so that an ASR hears them"
            )
    args.max_samples = 50 if args.max_samples is None else args.max_samples
    args.max_new_tokens = 256 if args.max_new_tokens is None else args.max_new_tokens

    model, tokenizer = load_for_inference(args.model, args.lora, args.device, args.dtype)
    st = SpeechTokenizer(tokenizer)
    style = args.prompt_style or prompt_style(args.lora or args.model, tokenizer)
    if style == "released" and prompting != "com":
        parser.error("the released prompt style has chain-of-modality prompting only")
    rt = released.ReleasedTokenizer(tokenizer) if style == "released" else None
    parse = released.parse_answer if rt else parse_answer
    report: dict = {
        "task": args.task,
        "model": args.model,
        "lora": args.lora,
        "data": args.data,
        "prompt_style": style,
        "prompting": prompting,
    }
    evaluation = stage_data.load_split(args.data, "eval", "test")
    evaluation = evaluation.select(range(min(args.max_samples, len(evaluation))))
    if args.task == "instruction":
        report |= instruction_metrics(args, model, st, rt, evaluation)

    if args.judge_model:
        import os

        from openai import OpenAI

        def ask(name: str, fields: dict) -> dict:
            return parse(answer(model, st, name, fields, args.max_new_tokens, rt, prompting))

        spoken = None
        if args.vocoder:
            from vocoder import load_vocoder

            spoken = SpokenAnswers(load_vocoder(storage.local_copy(args.vocoder)), asr)
        client = OpenAI(api_key=os.environ.get("OPENAI_API_KEY", "none"), base_url=args.base_url)
        scores, judged = chatgpt_scores(tasks, evaluation, ask, spoken, client, args.judge_model)
        report |= {
            "judged_spoken_answers_by": "asr" if spoken else "ta",
            "chatgpt_score": scores,
            "judged": judged,
        }
    name = "eval.json" if args.task == "instruction" else f"eval_{args.task}_{prompting}.json"
    out = Path(args.output or Path(args.lora or args.model) / name)
    out.write_text(json.dumps(report, indent=1) + "\n")
    shown = {k: v for k, v in report.items() if k not in ("asr_examples", "judged")}
    print(f"eval: {json.dumps(shown)} -> {out}")
    return report


def instruction_metrics(
    args, model, tokenizer: SpeechTokenizer, released_tokenizer, evaluation
) -> dict:
    """Held-out loss per config (rows in their own format: an imported release is
    ``released``) and the ASR word error rate on the eval rows' spoken instructions."""
    import jiwer

    released_rows = stage_data.dataset_style(args.data) == "released"
    rows_released = (
        (released_tokenizer or released.ReleasedTokenizer(tokenizer.tok)) if released_rows else None
    )
    loss = {}
    prompting = PROMPTING[stage_data.dataset_info(args.data).get("prompting", "com")]
    for config, names in (("cross_modal", CROSS_MODAL), ("chain_of_modality", prompting)):
        try:
            rows = stage_data.load_split(args.data, config, "validation")
        except ValueError:  # no validation split in this dataset
            continue
        rows = rows.select(range(min(args.max_samples, len(rows))))
        loss[config] = heldout_loss(model, heldout_samples(rows, tokenizer, names, rows_released))

    refs, hyps = [], []
    for row in evaluation:
        fields = {"description": ASR_DESCRIPTION, "speech": row["speech_instruction"], "text": ""}
        text = answer(
            model, tokenizer, "asr", fields, args.max_new_tokens, released_tokenizer
        ).split("<eoa>")[0]
        refs.append(normalize_text(row["text_instruction"]) or "-")
        hyps.append(normalize_text(released.clean(text) if released_tokenizer else text) or "-")
    return {
        "loss": loss,
        "asr_wer": float(jiwer.wer(refs, hyps)),
        "asr_examples": [
            {"reference": r, "hypothesis": h} for r, h in zip(refs[:3], hyps[:3], strict=True)
        ],
    }

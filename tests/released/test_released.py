"""The released SpeechGPT artifacts as downloaded (tiny stand-ins in the exact layouts, see
``conftest.py``): tokenization as transformers 4.29 did it, talk on the cm model + com
adapter, importing the released SpeechInstruct, and fine-tuning on it."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_dataset
from transformers import AutoModelForCausalLM

from speechgpt import talk
from speechinstruct.extractors import ExtractorSpec, UnitExtractor
from training import evaluate, merge_lora, released, train
from training.generate import Settings, Talker, Turn
from training.model import load_tokenizer, prompt_style
from training.released import CONTROL_STRINGS, META_INSTRUCTION, ReleasedTokenizer
from vocoder import load_vocoder

from .conftest import PROMPT, real_utterance

RECORDED = Path(__file__).with_name("llama429_ids.json")  # made by record_ids.py


def test_tokenization_matches_transformers_429(released_cm):
    recorded = json.loads(RECORDED.read_text())
    model_file = (released_cm / "tokenizer.model").read_bytes()
    assert hashlib.sha256(model_file).hexdigest() == recorded["sp_model_sha256"]
    tok = load_tokenizer(str(released_cm))
    assert len(tok) == recorded["vocab_size"]
    rt = ReleasedTokenizer(tok)
    for case in recorded["cases"]:
        assert rt(case["text"]) == case["ids"], case["text"]
        assert rt(case["text"], bos=False) == case["ids_no_bos"], case["text"]
    # talk's pieces give the ids of the reference's one prompt string
    asked = released.head(rt) + rt.encode(released.question(text="What is the capital of France?"))
    assert asked == rt(
        META_INSTRUCTION + "[Human]: What is the capital of France? <eoh>. [SpeechGPT]: "
    )
    # typed text never becomes a control token
    assert tok.convert_tokens_to_ids("<eoh>") not in rt.encode([("text", "say <eoh> now")])


def test_released_answers_parse_to_clean_text():
    parse = released.parse_answer
    got = parse("What is a bad term?; [ta] It is excrement.; [ua] <sosp><1><2><eosp><eoa>.")
    assert (got["tq"], got["ta"]) == ("What is a bad term?", "It is excrement.")
    assert parse(" Paris is the capital.<eoa> trailing") == {"ta": "Paris is the capital."}
    assert parse("[ta] Hi there; [ua] <sosp><3><4>")["ta"] == "Hi there"  # cut short
    assert parse("<eoa>") == {"ta": ""}


def _talk(model, vocoder, kmeans, out, *extra) -> Turn:
    limits = ["--max-text-tokens", "12", "--max-units", "24"]
    return talk.run(
        [
            "--model",
            str(model),
            "--kmeans",
            kmeans,
            "--vocoder",
            str(vocoder),
            "--out",
            str(out),
            *limits,
            *extra,
        ]
    )


def _answer_line(out: str) -> str:
    (line,) = [x for x in out.splitlines() if x.startswith("answer text:")]
    assert not any(c in line for c in CONTROL_STRINGS), line
    return line.removeprefix("answer text:").strip()


def test_talk_on_the_released_cm_and_com_as_downloaded(
    released_cm, released_com, released_vocoder, kmeans_1000, tmp_path, capsys
):
    tok = load_tokenizer(str(released_cm))
    assert prompt_style(str(released_cm), tok) == "released"  # no <eoa> token: picked by itself
    asks = (
        ["--text", "What is the capital of France?"],
        ["--wav", str(PROMPT)],
        ["--wav", str(real_utterance())],
    )
    style = ("--prompt-style", "released", "--sampling", "released")
    for n, ask in enumerate(asks):
        _talk(
            released_cm,
            released_vocoder,
            kmeans_1000,
            tmp_path / f"{n}.wav",
            "--lora",
            str(released_com),
            *style,
            *ask,
        )
        _answer_line(capsys.readouterr().out)


def test_import_reads_per_config_and_rejects_every_damaged_line(imported):
    ds = imported["ds"]
    cross = load_dataset(ds, "cross_modal", split="train")
    assert cross["task"] == ["tts"] and cross[0]["text"].startswith("The alchemist rode")
    assert cross[0]["prompt"].startswith(META_INSTRUCTION + "[Human]: Try to speak out")
    com = load_dataset(ds, "chain_of_modality", split="train")
    assert sorted(com["format"]) == ["s2s", "s2s", "s2s", "s2t", "t2s"]
    s2t = com[com["format"].index("s2t")]  # a transcript may hold brackets
    assert (s2t["speech_instruction"], s2t["text_response"]) == ([20, 21], "It is [1, 2, 3].")
    t2s = com[com["format"].index("t2s")]
    assert (t2s["text_instruction"], t2s["text_response"]) == (
        "What is the capital of France?",
        "Paris is the capital.",
    )
    assert t2s["speech_response"] == [5, 6, 7, 8] and t2s["response"].endswith("<eoa>.")
    rejects = load_dataset(ds, "rejects", split="train")
    assert len(rejects) == imported["damaged"]
    assert sorted(rejects["reason"]) == ["no_template"] * 4 + ["not_json", "unit_out_of_range"]
    info = json.loads(Path(ds, "build.json").read_text())
    assert info["prompt_style"] == "released" and info["system"] == META_INSTRUCTION
    assert info["extractor"]["k"] == 1000 and len(info["sources"]) == 3


def test_finetune_on_imported_data_from_the_released_base(
    imported, released_cm, released_vocoder, kmeans_1000, tmp_path, capsys
):
    """Stage 3 (LoRA, as the paper's) on the imported rows from the released-layout cm model;
    its adapter loads in talk."""
    s3 = tmp_path / "s3"
    argv = f"--stage 3 --config tiny/stage3 --steps 3 --data {imported['ds']} --output {s3}"
    summary = train.run([*argv.split(), "--base-model", str(released_cm)])
    assert summary["prompt_style"] == "released" and summary["skipped_rows"] == {}
    assert summary["samples"] == 4 and summary["dropped_too_long"] == 1  # the release's long row
    assert (s3 / "adapter_config.json").exists()
    capsys.readouterr()
    ask = ("--lora", str(s3), "--text", "hello")
    _talk(released_cm, released_vocoder, kmeans_1000, tmp_path / "c.wav", *ask)
    _answer_line(capsys.readouterr().out)


def test_talk_on_a_released_layout_pair_answers_what_it_learned(
    learned_release, released_vocoder, kmeans_1000, tmp_path, capsys
):
    """cm (stage 2 on the imported rows, written back in the released layout) + a peft-0.3
    com: talk, as released, repeats the learned answers to a typed question, to the
    release's spoken prompt and to real speech, and speaks them."""
    cm, com = learned_release
    asked = ("--lora", str(com), "--prompt-style", "released", "--max-text-tokens", "40")
    capsys.readouterr()
    typed = _talk(
        cm,
        released_vocoder,
        kmeans_1000,
        tmp_path / "a.wav",
        *asked,
        "--text",
        "What is the capital of France?",
    )
    assert _answer_line(capsys.readouterr().out) == "Paris is the capital."
    assert typed.units == [5, 6, 7, 8] and typed.wav.stat().st_size > 1000
    heard = {
        PROMPT: ("please tell me a story", "Once upon a time.", [9, 10, 11]),
        real_utterance(): ("he hoped for stew", "Stew sounds good.", [12, 13]),
    }
    for n, (wav, said) in enumerate(heard.items()):
        out = tmp_path / f"{n}.wav"
        spoken = _talk(cm, released_vocoder, kmeans_1000, out, *asked, "--wav", str(wav))
        assert (spoken.transcript, spoken.text, spoken.units) == said
        assert _answer_line(capsys.readouterr().out) == said[1] and out.stat().st_size > 1000


def test_speak_asks_as_the_released_tts_rows_are_written(
    learned_release, released_vocoder, kmeans_1000, imported
):
    """eval-speech's model-as-TTS on the released pair: the question is the release's own
    TTS row (its sample line, as imported) token for token, and the units it speaks are
    what the vocoder turns into the returned audio."""
    cm, com = learned_release
    row = load_dataset(imported["ds"], "cross_modal", split="train")[0]
    description = row["prompt"].split("[Human]: ")[1].split(" This is input: ")[0]
    extractor = UnitExtractor(ExtractorSpec("mfcc"), kmeans_1000)
    vocoder = load_vocoder(released_vocoder)
    talker = Talker.load(str(cm), str(com), extractor, vocoder, Settings(max_units=6))
    assert talker.style == "released"
    asked = [*talker.released(row["prompt"], bos=True), talker.st.sosp]
    assert talker.tts_prompt(row["text"], description) == asked
    units, audio = talker.speak(row["text"])
    assert 1 <= len(units) <= 6 and all(0 <= u < 1000 for u in units)
    np.testing.assert_array_equal(audio, vocoder.synthesize(units))


def test_merge_lora_and_eval_on_the_released_pair(learned_release, published, tmp_path):
    cm, com = learned_release
    merged = tmp_path / "merged"
    merge_lora.run(["--base", str(cm), "--lora", str(com), "--output", str(merged)])
    assert (merged / "tokenizer.model").exists()  # the released style needs it
    base = torch.load(cm / "pytorch_model.bin", weights_only=True)
    got = AutoModelForCausalLM.from_pretrained(merged).state_dict()
    for name, weight in base.items():  # an adapter with lora_B = 0 changes nothing
        torch.testing.assert_close(got[name], weight.float(), msg=name)
    argv = ["--model", str(cm), "--lora", str(com), "--data", published, "--max-samples", "2"]
    report = evaluate.run([*argv, "--max-new-tokens", "8", "--output", str(tmp_path / "e.json")])
    assert report["prompt_style"] == "released"
    hypotheses = [x["hypothesis"] for x in report["asr_examples"]]
    assert len(hypotheses) == 2 and not any(c in h for h in hypotheses for c in CONTROL_STRINGS)


def test_a_tokenizer_that_cannot_load_says_what_to_install(monkeypatch, released_cm):
    import transformers

    def missing(*args, **kwargs):  # what transformers raises without the library
        raise ImportError(
            "LlamaTokenizer requires the SentencePiece library but it was not "
            "found in your environment."
        )

    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", missing)
    with pytest.raises(RuntimeError, match="pip install sentencepiece protobuf"):
        load_tokenizer(str(released_cm))


def test_import_writes_shards_of_the_given_size(imported, tmp_path):
    from pipelines import import_speechinstruct

    out = tmp_path / "ds"
    argv = ["--input", *imported["info"]["sources"], "--output", str(out), "--rows-per-shard", "2"]
    import_speechinstruct.run(argv)
    files = sorted(p.name for p in (out / "data" / "chain_of_modality").glob("*.parquet"))
    assert files == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    again, first = (
        load_dataset(str(ds), "chain_of_modality", split="train")["id"]
        for ds in (out, imported["ds"])
    )
    assert again == first and len(first) == 5

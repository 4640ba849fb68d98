"""``build --prompting standard`` and ``build --eval-extra``: real Beam, Parquet and
``load_dataset``, on the session's sample units and T2U model."""

import json

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from pipelines import build, publish
from speechinstruct import texts
from speechinstruct.instructions import SPLIT, chain_of_modality
from speechinstruct.templates import CHAIN_OF_MODALITY, STANDARD, parse, render
from tests.conftest import K
from training import store
from training.config import load as load_stage_config
from training.data import load_split
from training.train import recipe_of

CHATS = "4"
GOOD = [
    {"instruction": "Name a fruit that is yellow.", "output": "A banana is yellow.", "x": 1},
    {"instruction": "How many legs does a cat have?", "output": "A cat has four legs."},
    {"instruction": "Say hello.", "output": "Hello there!", "generator": "gpt4", "dataset": "v"},
]


def _build(made, out, *extra) -> dict:
    argv = ["--units", *made["units"], "--chats", str(made["work"] / "chats.json")]
    argv += ["--t2u", made["t2u"], "--kmeans", made["km"], "--output", str(out)]
    return build.run([*argv, "--max-chats", CHATS, *extra])


def _rows(folder, table: str) -> list[dict]:
    return [
        r for f in sorted(folder.glob(f"{table}/*.parquet")) for r in pq.read_table(f).to_pylist()
    ]


@pytest.fixture(scope="module")
def built(made, tmp_path_factory) -> dict:
    """One build with standard prompting and an --eval-extra file, published."""
    work = tmp_path_factory.mktemp("prompting")
    extra = work / "alpaca_eval.jsonl"
    lines = [json.dumps(GOOD[0]), json.dumps(GOOD[1]), "{not json", ""]
    lines += [json.dumps({"instruction": "What is 2+2?"}), json.dumps(GOOD[2])]
    lines += [json.dumps({"instruction": "Be quiet.", "output": "  "}), json.dumps(["a", "b"])]
    extra.write_text("\n".join(lines) + "\n")
    info = _build(made, work / "build", "--prompting", "standard", "--eval-extra", str(extra))
    publish.run(["--input", str(work / "build"), "--output", str(work / "ds")])
    return {"work": work, "info": info}


def test_standard_rows_differ_from_com_rows_only_in_the_template(built):
    work = built["work"]
    built_rows = {r["id"]: r for r in _rows(work / "build", "chain_of_modality")}
    moss_rejects = [r for r in _rows(work / "build", "rejects") if r["corpus"] == "moss"]
    assert len(built_rows) == 4 * (int(CHATS) - len(moss_rejects)) > 0
    ds = load_dataset(str(work / "ds"), "chain_of_modality")
    published = [row for split in ds.values() for row in split]
    assert sorted(r["id"] for r in published) == sorted(built_rows)
    assert {r["format"] for r in published} == set(CHAIN_OF_MODALITY)
    columns = ("text_instruction", "text_response", "speech_instruction", "speech_response")
    for row in published:
        name, fields = parse(row["prompt"], row["response"], STANDARD)
        assert name == f"std_{row['format']}"
        assert fields == {k: row[k] for k in fields}  # what it holds are the row's columns
        with pytest.raises(ValueError, match="no template matches"):
            parse(row["prompt"], row["response"], CHAIN_OF_MODALITY)
        # the com row of the same quadruplet: the same columns, Appendix C's template
        quadruplet = {k: row[k] for k in columns}
        chat_id = row["id"].rsplit("_", 1)[0]
        com = chain_of_modality(chat_id, *quadruplet.values(), 0.05)
        (twin,) = [r for r in com if r["id"] == row["id"]]
        assert {k: v for k, v in twin.items() if k not in ("prompt", "response", SPLIT)} == {
            k: v for k, v in row.items() if k not in ("prompt", "response")
        }
        assert render(name, **quadruplet) == (row["prompt"], row["response"])
        assert render(row["format"], **quadruplet) == (twin["prompt"], twin["response"])
        assert (twin["prompt"], twin["response"]) != (row["prompt"], row["response"])


def test_build_json_and_card_record_the_prompting(built):
    work = built["work"]
    assert built["info"]["prompting"] == "standard"
    for folder in (work / "build", work / "ds"):
        assert json.loads((folder / "build.json").read_text())["prompting"] == "standard"
    card = (work / "ds" / "README.md").read_text()
    assert "chain_of_modality prompting: standard" in card
    assert "3 of the 7 read from\n  --eval-extra" in card


def test_stage3_reads_the_prompting_the_dataset_records(built, tmp_path):
    """The trainer's recipe parses a standard dataset's rows with Appendix E's templates:
    every row becomes a sample; parsed as chain-of-modality they would all be bad rows."""
    from tests.training.test_tokens import _tiny
    from training.tokens import SpeechTokenizer, expand

    model, tok = _tiny()
    expand(model, tok, K)
    st = SpeechTokenizer(tok)
    cfg = load_stage_config("tiny/stage3", max_length=100_000)
    data = str(built["work"] / "ds")
    recipe = recipe_of(cfg, data, None)
    assert recipe.prompting == "standard" and recipe.names("chain_of_modality") == STANDARD
    assert recipe.names("cross_modal") == ("asr", "tts")
    rows = load_split(data, "chain_of_modality", "train")
    samples = store.TokenStore(store.prepare(rows, st, recipe, tmp_path, progress=False))
    assert len(samples) == len(rows) > 0
    com = store.Recipe(3, "chain_of_modality", 100_000, seed=cfg.seed)
    with pytest.raises(store.TooManyBadRows):
        store.prepare(rows, st, com, tmp_path, progress=False)


def test_eval_extra_adds_its_good_rows_and_rejects_the_rest(built):
    work, info = built["work"], built["info"]
    assert info["counts"]["eval"] == {"test": 63}
    assert (info["eval_extra_read"], info["eval_extra_rows"]) == (7, 3)  # the blank line skipped
    assert info["eval_extra"].endswith("alpaca_eval.jsonl")
    evaluation = load_dataset(str(work / "ds"), "eval", split="test")
    assert evaluation.features == publish.features("eval")
    shipped = [r for r in evaluation if r["source"] == "speechinstruct"]
    extra = sorted((r for r in evaluation if r["source"] == "eval-extra"), key=lambda r: r["id"])
    assert len(shipped) == 60 and len(extra) == 3 and len(evaluation) == 63
    assert sorted(r["text_instruction"] for r in shipped) == sorted(
        e["instruction"] for e in texts.eval_pairs()
    )
    assert [r["id"] for r in extra] == ["eval_extra_00000", "eval_extra_00001", "eval_extra_00004"]
    for row, good in zip(extra, GOOD, strict=True):
        assert (row["text_instruction"], row["text_response"]) == (
            good["instruction"],
            good["output"],
        )
        assert row["role"] == ""
        for column in ("speech_instruction", "speech_response"):
            assert row[column] and all(0 <= u < K for u in row[column])
    for row in shipped:  # the shipped 60 keep their roles and are spoken too
        assert row["role"] and row["speech_instruction"] and row["speech_response"]
    rejects = sorted(
        (r for r in _rows(work / "build", "rejects") if r["corpus"] == "eval-extra"),
        key=lambda r: r["id"],
    )
    assert [(r["id"], r["reason"], r["detail"], r["stage"]) for r in rejects] == [
        ("eval_extra_00002", "bad_metadata", "not a JSON object", "build"),
        ("eval_extra_00003", "bad_metadata", "no 'output' string", "build"),
        ("eval_extra_00005", "empty_text", "empty instruction or output", "build"),
        ("eval_extra_00006", "bad_metadata", "not a JSON object", "build"),
    ]


def test_a_missing_eval_extra_file_is_refused(made, tmp_path):
    with pytest.raises(SystemExit):
        _build(made, tmp_path / "out", "--eval-extra", str(tmp_path / "absent.jsonl"))
    assert not (tmp_path / "out").exists()


def test_parse_eval_pair_fn_keeps_the_two_strings_and_rejects_the_rest():
    fn = build.ParseEvalPairFn()
    assert list(fn.process((0, GOOD[2]))) == [
        (
            "eval_extra_00000",
            {
                "instruction": "Say hello.",
                "response": "Hello there!",
                "role": "",
                "source": "eval-extra",
            },
        )
    ]
    bad = {
        1: (None, "bad_metadata", "not a JSON object"),
        2: ({"output": "Hi."}, "bad_metadata", "no 'instruction' string"),
        3: ({"instruction": "Hi?", "output": 4}, "bad_metadata", "no 'output' string"),
        4: ({"instruction": " ", "output": "Hi."}, "empty_text", "empty instruction or output"),
    }
    for index, (record, reason, detail) in bad.items():
        (out,) = fn.process((index, record))
        assert out.tag == build.REJECTS
        assert out.value == {
            "id": f"eval_extra_{index:05d}",
            "corpus": "eval-extra",
            "source": None,
            "stage": "build",
            "reason": reason,
            "detail": detail,
        }


def test_chain_of_modality_renders_either_prompting():
    args = ("moss_000001", "Hi?", "Hello.", [1, 2], [3], 0.05)
    com, std = chain_of_modality(*args), chain_of_modality(*args, "standard")
    assert com == chain_of_modality(*args, "com")
    assert [r["format"] for r in std] == [r["format"] for r in com] == list(CHAIN_OF_MODALITY)
    for c, s, name in zip(com, std, STANDARD, strict=True):
        assert {**s, "prompt": c["prompt"], "response": c["response"]} == c
        assert parse(s["prompt"], s["response"], STANDARD)[0] == name
    with pytest.raises(KeyError):
        chain_of_modality(*args, "cot")

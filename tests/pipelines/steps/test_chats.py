"""The chat steps of ``build``: read a chats file, parse each record's first turn."""

import json

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.build import REJECTS, ChatTurnsFn, ParseChatFn, ReadChatsFn
from pipelines.samples.moss import PREFIX, render
from pipelines.steps.write import SPLIT
from speechinstruct.texts import chats
from tests.pipelines.steps.conftest import counters, run

MAX_WORDS = 35
TURNS = list(chats())[:4]
LONG = next(t for t in chats() if len(t[0][1].split()) >= MAX_WORDS)
FRENCH = (("Ça va bien aujourd'hui, très bien?", "Très bien, merci à vous, ça va."),)
RECORDS = [{"plain_text": render(t), "prefix": PREFIX} for t in [*TURNS, LONG, FRENCH]]
RECORDS += [{"plain_text": "no turns here"}, "not an object", {"prefix": PREFIX}]


def _id(index: int) -> str:
    return f"moss_{index:06d}"


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    tmp = tmp_path_factory.mktemp("chats")
    array = json.dumps(RECORDS, indent=1, ensure_ascii=False).encode()
    lines = [json.dumps(r).encode() for r in RECORDS[:3]]
    paths = {
        "array": array,
        "bom": b"\xef\xbb\xbf" + array,
        "cut": array[: array.index(b"no turns here")],
        "jsonl": b"\xef\xbb\xbf" + b"\n\n".join([*lines, b"{not json"]) + b"\n",
    }
    for name, body in paths.items():
        (tmp / name).write_bytes(body)
    return {name: str(tmp / name) for name in paths}


def test_read_chats_fn_streams_array_and_lines(files):
    assert list(ReadChatsFn(None).process(files["array"])) == list(enumerate(RECORDS))
    assert list(ReadChatsFn(2).process(files["array"])) == list(enumerate(RECORDS[:2]))
    # an unreadable tail of an array, or an unreadable line, is one record of None
    assert list(ReadChatsFn(None).process(files["cut"])) == [*enumerate(RECORDS[:6]), (6, None)]
    assert list(ReadChatsFn(None).process(files["jsonl"])) == [*enumerate(RECORDS[:3]), (3, None)]


def test_read_chats_fn_reads_an_array_after_a_bom(files):
    assert list(ReadChatsFn(None).process(files["bom"])) == list(enumerate(RECORDS))


def test_read_and_parse_chats(files):
    p = TestPipeline()
    parsed = (
        p
        | beam.Create([files["array"]])
        | beam.ParDo(ReadChatsFn(None))
        | beam.ParDo(ParseChatFn(MAX_WORDS)).with_outputs(REJECTS, main="ok")
    )
    assert_that(
        parsed.ok,
        equal_to([(_id(i), human, answer) for i, ((human, answer),) in enumerate(TURNS)]),
        label="ok",
    )
    expected = [
        (_id(4), "long_response", f"{len(LONG[0][1].split())} words >= {MAX_WORDS}"),
        (_id(5), "not_english", FRENCH[0][0]),
        (_id(6), "bad_chat", "no complete [Human]/[MOSS] turn in 'no turns here'"),
        (_id(7), "bad_chat", "record has no 'plain_text' string"),
        (_id(8), "bad_chat", "record has no 'plain_text' string"),
    ]
    assert_that(
        parsed[REJECTS] | beam.Map(lambda r: (r["id"], r["reason"], r["detail"])),
        equal_to(expected),
        label="rejects",
    )
    assert_that(
        parsed[REJECTS] | beam.Map(lambda r: (r["corpus"], r["stage"], r["source"])),
        equal_to([("moss", "build", None)] * len(expected)),
        label="reject_fields",
    )
    assert counters(run(p), "build") == {
        "chats_read": len(RECORDS),
        "chats_parsed": len(TURNS),
        "rejected_long_response": 1,
        "rejected_not_english": 1,
        "rejected_bad_chat": 3,
    }
    assert len(TURNS) + len(expected) == len(RECORDS)


def test_chat_turns_fn_keeps_every_turn_of_the_chats_that_parse():
    multi = next(t for t in chats() if len(t) > 2)
    records = [*RECORDS, {"plain_text": render(multi), "prefix": PREFIX}]
    p = TestPipeline()
    rows = p | beam.Create(list(enumerate(records))) | beam.ParDo(ChatTurnsFn(0.0))
    expected = [
        (_id(i), [h for h, _ in turns], [a for _, a in turns], "train")
        for i, turns in enumerate([*TURNS, LONG, FRENCH])
    ]
    expected.append((_id(len(RECORDS)), [h for h, _ in multi], [a for _, a in multi], "train"))
    assert_that(
        rows | beam.Map(lambda r: (r["id"], r["human"], r["answer"], r[SPLIT])),
        equal_to(expected),
    )
    assert counters(run(p), "build") == {"text_chats": len(expected)}
    assert len(expected[-1][1]) == len(multi) > 2  # every turn of a multi-turn chat

import dataclasses
import shutil

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.records import AudioSource, Reject, Utterance
from pipelines.sources import REPEATED_ID, LibriSpeech
from pipelines.sources.base import reject
from pipelines.steps.read import ParseFiles, ReadCorpus, UniqueIds
from tests.pipelines.steps.conftest import REAL, TEXTS, counters, run

SPLIT = "dev-real"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Three real chapters under one split, damaged: a missing FLAC, an empty transcript, a
    FLAC without a line, an id on two lines, a chapter without audio, a stray file."""
    root = tmp_path_factory.mktemp("read") / "LibriSpeech"
    for chapter in ("9901/99011", "9902/99021", "9903/99031"):
        shutil.copytree(REAL / chapter, root / SPLIT / chapter)
    first, second = root / SPLIT / "9901" / "99011", root / SPLIT / "9902" / "99021"
    with (first / "9901-99011.trans.txt").open("a") as f:
        f.write("9901-99011-0002 A SECOND LINE FOR THE SAME ID\n")
    shutil.copy(first / "9901-99011-0000.flac", first / "9901-99011-0009.flac")
    (first / "notes.txt").write_text("not corpus metadata")
    trans = second / "9902-99021.trans.txt"
    trans.write_text(trans.read_text().replace(TEXTS["9902-99021-0003"], ""))
    (second / "9902-99021-0005.flac").unlink()
    (root / SPLIT / "9903" / "99031" / "9903-99031-0000.flac").unlink()
    return root


def _utterance(root, id_: str, text: str | None = None) -> Utterance:
    speaker, chapter, _ = id_.split("-")
    path = str(root / SPLIT / speaker / chapter / f"{id_}.flac")
    return Utterance(id_, "librispeech", SPLIT, speaker, text or TEXTS[id_], AudioSource(path))


def _expected(root) -> tuple[list[Utterance], list[tuple[str, str]]]:
    ids = [f"9901-99011-000{n}" for n in range(6)] + [f"9902-99021-000{n}" for n in (0, 1, 2, 4)]
    utterances = [_utterance(root, i) for i in ids]
    utterances.append(_utterance(root, "9901-99011-0002", "A SECOND LINE FOR THE SAME ID"))
    rejects = [
        ("9901-99011-0009", "bad_metadata"),
        ("9902-99021-0003", "empty_text"),
        ("9902-99021-0005", "missing_audio"),
        ("9903-99031-0000", "missing_audio"),
    ]
    return utterances, rejects


def test_parse_files_parses_one_group(corpus):
    chapter = corpus / SPLIT / "9902" / "99021"
    paths = sorted((str(p) for p in chapter.iterdir()), reverse=True)
    got = list(ParseFiles(LibriSpeech(str(corpus))).process((str(chapter), paths)))
    utterances = [r for r in got if isinstance(r, Utterance)]
    assert utterances == [_utterance(corpus, f"9902-99021-000{n}") for n in (0, 1, 2, 4)]
    assert [(r.id, r.reason, r.stage) for r in got if isinstance(r, Reject)] == [
        ("9902-99021-0003", "empty_text", "read"),
        ("9902-99021-0005", "missing_audio", "read"),
    ]


def test_read_corpus_finds_groups_and_parses_them_in_the_job(corpus):
    utterances, rejects = _expected(corpus)
    p = TestPipeline()
    records = p | ReadCorpus(LibriSpeech(str(corpus), SPLIT))
    assert_that(
        records | beam.Filter(lambda r: isinstance(r, Utterance)),
        equal_to(utterances),
        label="utterances",
    )
    assert_that(
        records
        | beam.Filter(lambda r: isinstance(r, Reject))
        | beam.Map(lambda r: (r.id, r.reason)),
        equal_to(rejects),
        label="rejects",
    )
    result = run(p)
    by_reason = {}
    for _, reason in rejects:
        by_reason[f"rejected_{reason}"] = by_reason.get(f"rejected_{reason}", 0) + 1
    assert counters(result, "read") == {
        "metadata_groups": 3,
        "records": len(utterances) + len(rejects),
        **by_reason,
    }


def test_unique_ids_keep_one_utterance_per_id(corpus):
    """Of an id on two lines the first by (path, start, end, text) is kept, whatever order
    they come in; the other becomes a ``bad_metadata`` reject; rejects pass through."""
    whole = _utterance(corpus, "9901-99011-0002")
    tail = dataclasses.replace(whole, source=AudioSource(whole.source.path, 1.0, 2.0))
    other = _utterance(corpus, "9901-99011-0003")
    missing = reject("librispeech", "9902-99021-0005", "missing_audio", "no flac")
    p = TestPipeline()
    out = p | beam.Create([tail, other, missing, whole]) | UniqueIds()
    repeated = reject("librispeech", whole.id, "bad_metadata", REPEATED_ID, tail.source)
    assert_that(out, equal_to([whole, other, missing, repeated]))
    run(p)

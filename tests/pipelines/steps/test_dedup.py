import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.steps.decode import audio_hash
from pipelines.steps.dedup import DUPLICATES, Deduplicate, KeepLowestId
from tests.pipelines.steps.conftest import counters, run, wave


def _row(id_: str, audio: str, units: str) -> dict:
    """A unit row as tokenize makes it, keyed by the hash of real audio and of its units."""
    return {
        "id": id_,
        "corpus": "librispeech",
        "source": {"path": f"{id_}.flac", "start_s": None, "end_s": None},
        "content_hash": audio_hash(wave(audio)),
        "_units_hash": units,
    }


def _duplicate(row: dict, of: str, kind: str) -> dict:
    return {
        "id": row["id"],
        "duplicate_of": of,
        "corpus": row["corpus"],
        "source": row["source"],
        "kind": kind,
    }


def test_keep_lowest_id_process():
    rows = [_row(i, "9901-99011-0000", "u") for i in ("b", "c", "a")]
    out = list(KeepLowestId("audio").process(("hash", rows)))
    assert out[0] == rows[2]
    assert [(t.tag, t.value) for t in out[1:]] == [
        (DUPLICATES, _duplicate(rows[0], "a", "audio")),
        (DUPLICATES, _duplicate(rows[1], "a", "audio")),
    ]


def test_deduplicate_audio_then_units_counts_each_kind():
    """As in tokenize: the same audio under another id (lower or higher), then different
    audio giving the same frame units."""
    original = _row("9901-99011-0000", "9901-99011-0000", "u0")
    later_copy = _row("9990-99901-0010", "9901-99011-0000", "u0")
    second = _row("9901-99011-0001", "9901-99011-0001", "u1")
    earlier_copy = _row("9900-99001-0001", "9901-99011-0001", "u1")
    same_units = _row("9902-99021-0000", "9902-99021-0000", "u0")
    other = _row("9902-99021-0001", "9902-99021-0001", "u2")
    rows = [later_copy, second, original, same_units, earlier_copy, other]
    p = TestPipeline()
    by_audio = p | beam.Create(rows) | "DedupAudio" >> Deduplicate("content_hash", "audio")
    by_units = by_audio.kept | "DedupUnits" >> Deduplicate("_units_hash", "units")
    assert_that(by_units.kept, equal_to([original, earlier_copy, other]), label="kept")
    duplicates = (by_audio[DUPLICATES], by_units[DUPLICATES]) | beam.Flatten()
    assert_that(
        duplicates,
        equal_to(
            [
                _duplicate(later_copy, original["id"], "audio"),
                _duplicate(second, earlier_copy["id"], "audio"),
                _duplicate(same_units, original["id"], "units"),
            ]
        ),
        label="duplicates",
    )
    got = counters(run(p), "dedup")
    assert got == {"duplicates_audio": 2, "duplicates_units": 1}
    assert len(rows) == 3 + sum(got.values())

import itertools
import json

import pytest

from pipelines.records import Utterance
from pipelines.sources import librilight
from pipelines.sources.librilight import pack
from pipelines.survey import survey


def test_pack_is_greedy_and_bounded():
    slices = [(0, 10), (11, 20), (21, 29), (30, 45), (46, 90), (91, 92)]
    assert pack(slices, 30) == [(0, 29), (30, 45), (46, 90), (91, 92)]
    assert pack([], 30) == []


def test_segments_follow_voice_activity(sample):
    root = sample["root"] / "librilight"
    got = list(librilight.read(str(root), "small"))
    assert got and all(isinstance(r, Utterance) and r.text is None for r in got)
    for book in sample["expected"]["librilight"]:
        segs = [r for r in got if r.id.rsplit("_", 1)[0] == book["stem"]]
        assert [r.id for r in segs] == [f"{book['stem']}_{n}" for n in range(len(segs))]
        assert {r.speaker for r in segs} == {book["speaker"]}
        slices = book["slices"]
        starts = [s for s, _ in slices]
        ends = [e for _, e in slices]
        assert segs[0].source.start_s == slices[0][0] and segs[-1].source.end_s == slices[-1][1]
        for a, b in itertools.pairwise(segs):
            assert a.source.end_s in ends and b.source.start_s in starts
            nxt = starts.index(b.source.start_s)
            assert slices[nxt - 1][1] == a.source.end_s  # consecutive, nothing skipped
            assert slices[nxt][1] - a.source.start_s > 30  # greedy: the next slice did not fit
        assert all(r.source.end_s - r.source.start_s <= 30 for r in segs)
        meta = json.loads(next(root.rglob(f"{book['stem']}.json")).read_text())
        assert meta["file_length_sec"] >= 120


def test_damage_becomes_rejects(damaged):
    root = damaged / "librilight"
    metas = sorted(root.rglob("*.json"))
    meta = json.loads(metas[0].read_text())
    meta["voice_activity"].insert(1, [5.0, 4.0])  # bad_segment
    metas[0].write_text(json.dumps(meta))
    metas[1].write_text("{ not json")  # bad_metadata
    extra = metas[0].with_name("99_orphan_64kb.json")
    extra.write_text(json.dumps(meta))  # missing_audio: a .json with no .flac
    result = survey("librilight", str(root), "small")
    assert result.rejects == {"bad_segment": 1, "bad_metadata": 1, "missing_audio": 1}
    assert result.read == result.usable + 3
    assert result.usable == len([r for r in librilight.read(str(root), "small")
                                 if isinstance(r, Utterance)])  # fmt: skip


def test_too_long_limit_applies(sample):
    from pipelines.audio import AudioLimits

    root = sample["root"] / "librilight"
    result = survey("librilight", str(root), "small", AudioLimits(max_s=10))
    assert result.rejects["too_long"] > 0
    assert result.read == result.usable + sum(result.rejects.values())


def test_wrong_subset_is_a_clear_error(sample):
    with pytest.raises(FileNotFoundError, match="found: small"):
        list(librilight.read(str(sample["root"] / "librilight"), "medium"))

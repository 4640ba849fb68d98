import itertools
import json

import pytest
import soundfile as sf

from pipelines import sources
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
        base = f"{book['speaker']}_{book['stem']}"  # speaker folder + file stem
        segs = [r for r in got if r.id.rsplit("_", 1)[0] == base]
        assert [r.id for r in segs] == [f"{base}_{n}" for n in range(len(segs))]
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
        assert sf.info(next(root.rglob(f"{book['stem']}.flac"))).duration >= 120


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
    assert result.usable == len(
        [r for r in librilight.read(str(root), "small") if isinstance(r, Utterance)]
    )


def test_too_long_limit_applies(sample):
    from pipelines.audio import AudioLimits

    root = sample["root"] / "librilight"
    result = survey("librilight", str(root), "small", AudioLimits(max_s=10))
    assert result.rejects["too_long"] > 0
    assert result.read == result.usable + sum(result.rejects.values())


def test_wrong_subset_is_a_clear_error(sample):
    with pytest.raises(FileNotFoundError, match="found: small"):
        list(librilight.read(str(sample["root"] / "librilight"), "medium"))


def test_real_format_damage(damaged):
    """Damage seen in real downloads: empty VAD, NaN times, slices past the file's end (the
    JSON has no length: the FLAC header gives it), a BOM; and the subset folder as root."""
    root = damaged / "librilight" / "small"
    flacs = sorted(root.rglob("*.flac"))
    length = sf.info(flacs[0]).duration
    meta = json.loads(flacs[0].with_suffix(".json").read_text())
    slices = meta["voice_activity"]
    meta["voice_activity"] = [*slices, [length + 1, length + 3]]  # bad_segment: past the end
    flacs[0].with_suffix(".json").write_text("\ufeff" + json.dumps(meta))  # a BOM is fine
    meta2 = json.loads(flacs[1].with_suffix(".json").read_text())
    meta2["voice_activity"] = [[float("nan"), 3.0], *meta2["voice_activity"]]  # bad_segment
    flacs[1].with_suffix(".json").write_text(json.dumps(meta2))
    copy = flacs[1].parent / "03_other_64kb.flac"
    copy.write_bytes(flacs[1].read_bytes())
    copy.with_suffix(".json").write_text(json.dumps({**meta2, "voice_activity": []}))  # silent
    got = list(librilight.read(str(root)))  # the subset folder itself as the root
    rejects = {r.id: r.reason for r in got if not isinstance(r, Utterance)}
    spk0, spk1 = flacs[0].parent.parent.name, flacs[1].parent.parent.name
    assert rejects == {
        f"{spk0}_{flacs[0].stem}_vad{len(slices)}": "bad_segment",
        f"{spk1}_{flacs[1].stem}_vad0": "bad_segment",
        f"{spk1}_03_other_64kb": "silent",
    }
    kept = [r for r in got if isinstance(r, Utterance)]
    assert kept and {r.split for r in kept} == {"small"}
    assert all(r.source.end_s <= length + 0.1 for r in kept if flacs[0].stem in r.id)
    result = survey("librilight", str(damaged / "librilight"), "small")
    assert result.read == result.usable + sum(result.rejects.values())


def test_same_stem_under_two_speakers_keeps_both(damaged):
    root = damaged / "librilight" / "small"
    flac = sorted(root.rglob("*.flac"))[0]
    twin = root / "77" / flac.parent.name
    twin.mkdir(parents=True)
    for f in (flac, flac.with_suffix(".json")):
        (twin / f.name).write_bytes(f.read_bytes())
    ids = [r.id for r in sources.read("librilight", str(damaged / "librilight"), "small")]
    assert len(ids) == len(set(ids))
    assert any(i.startswith(f"77_{flac.stem}_") for i in ids)

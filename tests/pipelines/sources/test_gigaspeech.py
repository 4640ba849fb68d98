import json

import pytest

from pipelines.records import Reject, Utterance
from pipelines.sources import gigaspeech
from pipelines.sources.gigaspeech import GARBAGE_TAGS, clean_text
from pipelines.survey import survey


def test_clean_text():
    tn = "WELL <COMMA> DID YOU SEE IT <QUESTIONMARK> YES <PERIOD> WOW <EXCLAMATIONPOINT>"
    assert clean_text(tn) == "WELL, DID YOU SEE IT? YES. WOW!"
    assert clean_text(tn, "strip") == "WELL DID YOU SEE IT YES WOW"
    with pytest.raises(ValueError):
        clean_text(tn, "keep")


def _expected_text(sentence: str) -> str:
    return " ".join(sentence.upper().split())


def test_all_segments(sample):
    got = list(gigaspeech.read(str(sample["root"] / "GigaSpeech")))
    expected = sample["expected"]["gigaspeech"]
    assert [r.id for r in got] == [e["id"] for e in expected]
    for record, e in zip(got, expected, strict=True):
        if e["sentence"] is None:
            assert isinstance(record, Reject) and record.reason == "garbage_tag"
        else:
            assert isinstance(record, Utterance)
            assert (record.text, record.speaker) == (_expected_text(e["sentence"]), e["speaker"])
            assert record.source.path.endswith(".opus")
            assert 0 <= record.source.start_s < record.source.end_s


def test_subset_filter(sample):
    root = str(sample["root"] / "GigaSpeech")
    for subset in ("XS", "S", "DEV", "TEST"):
        got = [r.id for r in gigaspeech.read(root, subset)]
        want = [
            e["id"] for e in sample["expected"]["gigaspeech"] if f"{{{subset}}}" in e["subsets"]
        ]
        assert got == want and got
    assert len(list(gigaspeech.read(root, "S"))) > len(list(gigaspeech.read(root, "XS")))


def test_damage_becomes_rejects(damaged):
    root = damaged / "GigaSpeech"
    meta = json.loads((root / "GigaSpeech.json").read_text())
    audios = meta["audios"]
    speech = [s for s in audios[0]["segments"] if not any(t in s["text_tn"] for t in GARBAGE_TAGS)]
    speech[0]["end_time"] = speech[0]["begin_time"]  # bad_segment
    speech[1]["text_tn"] = "<COMMA> <PERIOD>"  # empty_text
    speech[2]["begin_time"] = audios[0]["duration"] + 5  # bad_segment: beyond the audio
    speech[2]["end_time"] = audios[0]["duration"] + 8
    speech[3]["end_time"] = speech[3]["begin_time"] + 0.2  # too_short
    audios[1]["path"] = "../../outside.opus"  # path_escape for every segment of file 1
    (root / audios[2]["path"]).unlink()  # missing_audio for every segment of file 2
    del audios[3]["segments"][0]["text_tn"]  # bad_metadata
    (root / "GigaSpeech.json").write_text(json.dumps(meta))
    result = survey("gigaspeech", str(root))
    n1, n2 = len(audios[1]["segments"]), len(audios[2]["segments"])
    assert result.rejects["bad_segment"] == 2
    assert result.rejects["empty_text"] == 1
    assert result.rejects["too_short"] == 1
    assert result.rejects["path_escape"] == n1
    assert result.rejects["missing_audio"] == n2 - 1  # its garbage segment is rejected first
    assert result.rejects["bad_metadata"] == 1
    assert result.read == result.usable + sum(result.rejects.values())


def test_broken_json_is_a_reject_not_a_crash(tmp_path):
    (tmp_path / "GigaSpeech.json").write_text('{"audios": [{"aid": "A", "path": "x.opus", "segm')
    out = list(gigaspeech.read(str(tmp_path)))
    assert [(r.reason, r.id) for r in out] == [("bad_metadata", "GigaSpeech.json")]


def test_subset_spellings_and_bad_entries(damaged):
    root = damaged / "GigaSpeech"
    want = [r.id for r in gigaspeech.read(str(root), "XS")]
    assert want and all(
        [r.id for r in gigaspeech.read(str(root), s)] == want for s in ("xs", "{XS}", " XS ")
    )
    with pytest.raises(ValueError, match="unknown GigaSpeech subset 'XXL'"):
        list(gigaspeech.read(str(root), "XXL"))
    meta = json.loads((root / "GigaSpeech.json").read_text())
    meta["audios"].insert(1, None)  # not an object
    del meta["audios"][0]["segments"][0]["subsets"]
    (root / "GigaSpeech.json").write_text(json.dumps(meta))
    got = list(gigaspeech.read(str(root), "XS"))
    rejects = [(r.id, r.reason) for r in got if isinstance(r, Reject)]
    sid = meta["audios"][0]["segments"][0]["sid"]
    assert (sid, "bad_metadata") in rejects and ("audios[1]", "bad_metadata") in rejects

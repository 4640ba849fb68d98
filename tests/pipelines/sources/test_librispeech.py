import shutil

import pytest

from pipelines.records import Reject, Utterance
from pipelines.sources import librispeech
from pipelines.survey import survey


def test_reads_every_utterance_with_text_and_speaker(sample):
    root = sample["root"] / "LibriSpeech"
    got = list(librispeech.read(str(root)))
    assert all(isinstance(r, Utterance) for r in got)
    expected = sorted(sample["expected"]["librispeech"], key=lambda e: e["id"])
    assert (
        sorted(
            ({"id": r.id, "split": r.split, "speaker": r.speaker, "text": r.text} for r in got),
            key=lambda e: e["id"],
        )
        == expected
    )
    assert {e["split"] for e in expected} == {"train-clean-100", "dev-clean"}
    first = got[0]
    assert first.text == first.text.upper()
    assert first.source.path.endswith(f"{first.id}.flac") and first.source.start_s is None
    assert (root / "SPEAKERS.TXT").read_text().startswith(";ID")


def test_one_split(sample):
    root = sample["root"] / "LibriSpeech"
    dev = [r.id for r in librispeech.read(str(root), "dev-clean")]
    assert dev and dev == sorted(
        e["id"] for e in sample["expected"]["librispeech"] if e["split"] == "dev-clean"
    )


def test_damage_becomes_rejects(damaged):
    root = damaged / "LibriSpeech" / "dev-clean"
    chapter = sorted(p for p in root.glob("*/*") if p.is_dir())[0]
    trans = next(chapter.glob("*.trans.txt"))
    lines = trans.read_text().splitlines()
    flacs = sorted(chapter.glob("*.flac"))
    ids = [line.split()[0] for line in lines]
    flacs[0].unlink()  # missing_audio
    (chapter / f"{ids[1]}.flac").write_bytes(b"garbage" * 50)  # decode_error
    lines[2] = ids[2]  # empty_text
    lines.append("not-an-id SOME WORDS")  # bad_metadata
    trans.write_text("\n".join(lines) + "\n")
    shutil.copy(chapter / f"{ids[3]}.flac", chapter / "9-9-9999.flac")  # no transcript line
    result = survey("librispeech", str(damaged / "LibriSpeech"), "dev-clean")
    assert result.rejects == {
        "missing_audio": 1,
        "decode_error": 1,
        "empty_text": 1,
        "bad_metadata": 2,
    }
    assert result.read == result.usable + sum(result.rejects.values())
    by_reason = {r.reason: r for r in result.examples}
    assert by_reason["missing_audio"].id == ids[0]
    assert by_reason["decode_error"].id == ids[1] and by_reason["decode_error"].stage == "decode"
    assert by_reason["empty_text"].id == ids[2]
    assert all(isinstance(r, Reject) for r in result.examples)


def test_real_format_damage(damaged):
    """A BOM, a tab after the id, a line that is not UTF-8 (one reject, not one for the line
    and another for its .flac); and a split folder given as the root."""
    split = damaged / "LibriSpeech" / "dev-clean"
    chapter = sorted(p for p in split.glob("*/*") if p.is_dir())[0]
    trans = next(chapter.glob("*.trans.txt"))
    lines = trans.read_text().splitlines()
    ids = [line.split()[0] for line in lines]
    lines[1] = lines[1].replace(" ", "\t", 1)
    body = ("\n".join(lines) + "\n").encode()
    body = body.replace(lines[2].encode(), lines[2].encode() + b" \xff\xfe")
    trans.write_bytes(b"\xef\xbb\xbf" + body)
    got = list(librispeech.read(str(split)))  # the split folder itself
    rejects = [(r.id, r.reason) for r in got if isinstance(r, Reject)]
    assert rejects == [(ids[2], "bad_metadata")]
    by_id = {r.id: r for r in got}
    assert by_id[ids[0]].text == " ".join(lines[0].split()[1:])  # the BOM is not in the id
    assert by_id[ids[1]].text == " ".join(lines[1].split()[1:])
    assert {r.split for r in got if isinstance(r, Utterance)} == {"dev-clean"}


def test_folder_without_splits_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no librispeech files under"):
        list(librispeech.read(str(tmp_path / "empty")))

from collections import Counter

from pipelines.records import Utterance
from pipelines.sources import commonvoice
from pipelines.survey import survey


def test_validated_has_every_clip(sample):
    root = sample["root"] / "cv-corpus" / "en"
    got = list(commonvoice.read(str(root)))
    assert all(isinstance(r, Utterance) for r in got)
    expected = sample["expected"]["commonvoice"]
    assert [(r.id, r.speaker, r.text) for r in got] == [
        (e["id"], e["speaker"], e["text"]) for e in expected
    ]
    assert any(r.text.startswith('"') for r in got)  # an unbalanced quote survives QUOTE_NONE
    readers = Counter(r.text for r in got)
    assert max(readers.values()) >= 2  # several speakers read one sentence
    assert all(r.source.path.endswith(f"clips/{r.id}.mp3") for r in got)


def test_splits_partition_validated(sample):
    root = str(sample["root"] / "cv-corpus" / "en")
    ids = {s: [r.id for r in commonvoice.read(root, s)] for s in ("train", "dev", "test")}
    for split, got in ids.items():
        assert got == [e["id"] for e in sample["expected"]["commonvoice"] if e["split"] == split]
    assert sum(map(len, ids.values())) == len(sample["expected"]["commonvoice"])


def test_damage_becomes_rejects(damaged):
    root = damaged / "cv-corpus" / "en"
    lines = (root / "validated.tsv").read_text().splitlines()
    cells = [line.split("\t") for line in lines]
    (root / "clips" / cells[1][1]).unlink()  # missing_audio
    cells[2][2] = ""  # empty_text
    cells[3][1] = "../../../etc/passwd"  # path_escape
    (root / "clips" / cells[4][1]).write_bytes(b"\xff\xfb" + b"\x00" * 100)  # decode_error
    cells[5] = cells[5][:3]  # bad_metadata: a short row
    (root / "validated.tsv").write_text("\n".join("\t".join(c) for c in cells) + "\n")
    result = survey("commonvoice", str(root), "validated")
    assert result.rejects == {
        "missing_audio": 1,
        "empty_text": 1,
        "path_escape": 1,
        "decode_error": 1,
        "bad_metadata": 1,
    }
    assert result.read == len(lines) - 1 == result.usable + 5


def test_real_format_variants(damaged):
    """A BOM before the header, blank lines, a sentence that is not UTF-8, and Common Voice
    1/2 clip names without .mp3."""
    root = damaged / "cv-corpus" / "en"
    lines = (root / "validated.tsv").read_text().splitlines()
    cells = [line.split("\t") for line in lines]
    bare = cells[1][1].removesuffix(".mp3")
    cells[1][1] = bare  # as CV 1 lists it; the clip on disk is <name>.mp3
    text = (
        "\n".join("\t".join(c) for c in cells[:3])
        + "\n\n"
        + "\n".join("\t".join(c) for c in cells[3:])
    )
    (root / "validated.tsv").write_bytes(
        ("\ufeff" + text + "\n\n").encode().replace(cells[2][2].encode(), b"\xff\xfe", 1)
    )
    got = list(commonvoice.read(str(root)))
    assert len(got) == len(lines) - 1
    assert [(r.id, r.reason) for r in got if not isinstance(r, Utterance)] == [
        (cells[2][1].removesuffix(".mp3"), "bad_metadata")  # a sentence that is not UTF-8
    ]
    first = got[0]
    assert first.id == bare and first.source.path.endswith(f"clips/{bare}.mp3")
    assert first.speaker == cells[1][0]  # the header's first column survived the BOM

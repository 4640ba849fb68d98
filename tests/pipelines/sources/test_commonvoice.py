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
    assert result.rejects == {"missing_audio": 1, "empty_text": 1, "path_escape": 1,
                              "decode_error": 1, "bad_metadata": 1}  # fmt: skip
    assert result.read == len(lines) - 1 == result.usable + 5

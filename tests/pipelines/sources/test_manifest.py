import json

import numpy as np
import soundfile as sf

from pipelines.records import Utterance
from pipelines.sources import manifest
from pipelines.survey import survey


def _wav(path, seconds, level=0.1, seed=0):
    rng = np.random.default_rng(seed)
    sf.write(path, (rng.standard_normal(int(16_000 * seconds)) * level).astype(np.float32), 16_000)


def test_tsv_and_jsonl(tmp_path):
    (tmp_path / "a").mkdir()
    _wav(tmp_path / "a" / "one.wav", 1.0)
    _wav(tmp_path / "two.wav", 2.0, seed=1)
    (tmp_path / "train.tsv").write_text("path\ttext\tspeaker\na/one.wav\thello  world\tann\n")
    rows = [
        {"path": "two.wav", "text": None, "speaker": "bob", "id": "t2", "start": 0.5, "end": 1.5}
    ]
    (tmp_path / "dev.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    (tsv,) = manifest.read(str(tmp_path))
    assert (tsv.id, tsv.text, tsv.speaker, tsv.split) == ("a_one", "hello world", "ann", "train")
    (js,) = manifest.read(str(tmp_path), "dev")
    assert isinstance(js, Utterance) and (js.id, js.text, js.speaker) == ("t2", None, "bob")
    assert (js.source.start_s, js.source.end_s) == (0.5, 1.5)
    (direct,) = manifest.read(str(tmp_path / "dev.jsonl"))
    assert direct == js


def test_damage_becomes_rejects(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    _wav(root / "ok.wav", 1.0)
    _wav(root / "short.wav", 0.2)
    _wav(root / "long.wav", 70.0)
    _wav(root / "quiet.wav", 1.0, level=1e-5)
    (tmp_path / "outside.wav").write_bytes((root / "ok.wav").read_bytes())
    rows = [
        {"path": "ok.wav", "text": "fine", "speaker": "s"},
        {"path": "short.wav", "text": "a", "speaker": "s"},  # too_short
        {"path": "long.wav", "text": "b", "speaker": "s"},  # too_long
        {"path": "quiet.wav", "text": "c", "speaker": "s"},  # silent
        {"path": "../outside.wav", "text": "d", "speaker": "s"},  # path_escape
        {"path": "/etc/passwd", "text": "d", "speaker": "s", "id": "abs"},  # path_escape
        {"path": "gone.wav", "text": "e", "speaker": "s"},  # missing_audio
        {"path": "ok.wav", "text": "", "speaker": "s", "id": "blank"},  # empty_text
        {"path": "ok.wav", "text": "f", "id": "seg", "start": 0.8, "end": 0.4},  # bad_segment
        {"speaker": "s"},  # bad_metadata
    ]
    lines = [json.dumps(r) for r in rows] + ["{broken"]  # bad_metadata
    (root / "train.jsonl").write_text("\n".join(lines) + "\n")
    result = survey("manifest", str(root))
    assert result.usable == 1
    assert result.rejects == {
        "too_short": 1,
        "too_long": 1,
        "silent": 1,
        "path_escape": 2,
        "missing_audio": 1,
        "empty_text": 1,
        "bad_segment": 1,
        "bad_metadata": 2,
    }
    assert result.read == len(lines)


def test_segments_numbers_and_repeated_ids(tmp_path):
    """Segments of one file get distinct ids; start/end that are not finite numbers are
    rejects, not crashes; an id listed twice keeps the first, rejects the second."""
    from pipelines import sources

    _wav(tmp_path / "long.wav", 3.0)
    rows = [
        {"path": "long.wav", "text": "a", "start": 0.0, "end": 1.0},
        {"path": "long.wav", "text": "b", "start": 1.0, "end": 2.5},
        {"path": "long.wav", "text": "c", "start": [1], "end": 2},  # bad_metadata
        {"path": "long.wav", "text": "d", "start": True, "end": 2},  # bad_metadata
        {"path": "long.wav", "text": "e", "start": 1, "end": float("inf")},  # bad_segment
        {"path": "long.wav", "text": "f", "id": "x"},
        {"path": "long.wav", "text": "g", "id": "x"},  # bad_metadata: id repeated
    ]
    (tmp_path / "train.jsonl").write_text("\ufeff" + "\n".join(map(json.dumps, rows)) + "\n\n")
    got = list(sources.read("manifest", str(tmp_path)))
    assert [(r.id, type(r).__name__, getattr(r, "reason", None)) for r in got] == [
        ("long_0_1000", "Utterance", None),
        ("long_1000_2500", "Utterance", None),
        ("long", "Reject", "bad_metadata"),  # times unreadable: the path's id
        ("long", "Reject", "bad_metadata"),
        ("long_1000_", "Reject", "bad_segment"),
        ("x", "Utterance", None),
        ("x", "Reject", "bad_metadata"),
    ]
    assert got[1].source.start_s == 1.0 and got[1].text == "b"

import json

import pyarrow.parquet as pq
import pytest

from schemas import to_table
from schemas.outputs import MARKER
from speechinstruct.t2u import train as t2u_train
from speechinstruct.t2u.model import T2U, normalize_text


def _units_dir(tmp_path, rows, k=20):
    out = tmp_path / "units_out"
    (out / "units").mkdir(parents=True)
    table = to_table(
        "units",
        [
            {
                "id": f"u{i}",
                "corpus": "c",
                "split": "s",
                "speaker": "p",
                "text": text,
                "units": units,
                "durations": [1] * len(units),
                "num_frames": len(units),
                "duration_s": 1.0,
                "source": {"path": "x", "start_s": None, "end_s": None},
                "extractor": {"name": "mfcc", "layer": None, "k": k, "centroids_hash": "h"},
                "content_hash": f"h{i}",
            }
            for i, (text, units) in enumerate(rows)
        ],
    )
    pq.write_table(table, out / "units" / "train-00000-of-00001.parquet")
    (out / MARKER).write_text("{}")  # a finished tokenize output, as far as train-t2u asks
    return out


def test_normalize_text():
    assert normalize_text("Hello, WORLD!  It's 5 o'clock.") == "hello world it's o'clock"


def test_uer():
    assert t2u_train.unit_error_rate([[1, 2, 3, 4]], [[1, 2, 9]]) == pytest.approx(0.5)
    assert t2u_train.unit_error_rate([[1, 2]], [[1, 2]]) == 0.0


def test_learns_a_deterministic_mapping_and_saves_hf_format(tmp_path):
    # a learnable toy language: each letter speaks as two units
    words = ["ab", "ba", "abc", "cab", "bca", "cc", "aa", "bb", "acb", "cba", "abab", "caca"]
    code = {"a": [1, 2], "b": [3, 4], "c": [5, 6], " ": [7]}
    rows = [(w, [u for ch in w for u in code[ch]]) for w in words * 3]
    out = _units_dir(tmp_path, rows)
    metrics = t2u_train.run(
        [
            "--units",
            str(out),
            "--output",
            str(tmp_path / "t2u"),
            "--steps",
            "150",
            "--batch-size",
            "8",
            "--lr",
            "3e-3",
        ]
    )
    assert metrics["final_loss"] < metrics["first_loss"] / 3
    assert metrics["heldout_uer"] < metrics["untrained_uer"]
    assert json.loads((tmp_path / "t2u" / "t2u_metrics.json").read_text()) == metrics
    t2u = T2U.load(tmp_path / "t2u")
    got = t2u.generate(["ab", "cab", "ba", ""], batch_size=2)
    assert got[0] == [1, 2, 3, 4] and got[3] == []
    assert all(0 <= u < 20 for seq in got for u in seq)
    texts = ["abc", "ca", "bacab", "cc", "b"]
    assert t2u.generate(texts, batch_size=5) == [t2u.generate([t])[0] for t in texts]


def test_mixed_k_is_refused(tmp_path):
    a = _units_dir(tmp_path / "a", [("hi", [1])], k=10)
    b = _units_dir(tmp_path / "b", [("yo", [2])], k=20)
    with pytest.raises(ValueError, match="disagree on K"):
        t2u_train.read_pairs([str(a), str(b)])

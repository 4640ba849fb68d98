import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from pipelines.steps.summary import SUMMARY, WriteSummary, read_summary, tables_of
from tests.pipelines.steps.conftest import run

COUNTS = [("read", 1)] * 6 + [("kept", 1)] * 3 + [("rejected/silent", 1)] * 2
COUNTS += [("audio_ms", 2870), ("audio_ms", 3150), ("duplicates/audio", 1)]
FILES = [
    {"table": "units", "split": "train", "file": "train-00001-of-00002.parquet", "rows": 1},
    {"table": "rejects", "split": "train", "file": "train-00000-of-00001.parquet", "rows": 2},
    {"table": "units", "split": "train", "file": "train-00000-of-00002.parquet", "rows": 2},
    {"table": "units", "split": "dev", "file": "dev-00000-of-00001.parquet", "rows": 0},
]


def _summarize(counts: list, files: list, folder: str):
    p = TestPipeline()
    counts = p | "Counts" >> beam.Create(counts)
    files = p | "Files" >> beam.Create(files)
    assert_that((counts, files) | WriteSummary(folder), equal_to([f"{folder}/{SUMMARY}"]))
    return run(p)


def test_write_summary_sums_counts_and_lists_files(tmp_path):
    _summarize(COUNTS, FILES, str(tmp_path))
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["counts"] == {
        "audio_ms": 6020,
        "duplicates/audio": 1,
        "kept": 3,
        "read": 6,
        "rejected/silent": 2,
    }
    assert list(summary["counts"]) == sorted(summary["counts"])
    assert summary["files"] == [FILES[1], FILES[3], FILES[2], FILES[0]]
    counts = summary["counts"]
    assert counts["read"] == counts["kept"] + counts["rejected/silent"] + counts["duplicates/audio"]

    assert read_summary(str(tmp_path)) == summary and not (tmp_path / SUMMARY).exists()
    assert tables_of(summary["files"]) == {
        "rejects": {"files": ["rejects/train-00000-of-00001.parquet"], "rows": {"train": 2}},
        "units": {
            "files": [
                "units/dev-00000-of-00001.parquet",
                "units/train-00000-of-00002.parquet",
                "units/train-00001-of-00002.parquet",
            ],
            "rows": {"dev": 0, "train": 3},
        },
    }


def test_write_summary_of_nothing(tmp_path):
    _summarize([], [], str(tmp_path))
    assert json.loads((tmp_path / SUMMARY).read_text()) == {"counts": {}, "files": []}

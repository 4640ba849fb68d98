"""A job's counts and written files, combined in the pipeline into one small JSON file.

The driver reads that file after the run instead of reading the outputs back: counts are
``(name, n)`` pairs summed per name, files are the shard writers' records.
"""

from __future__ import annotations

import apache_beam as beam

from speechinstruct import storage

SUMMARY = "_summary.json"


def _write(path: str, counts: dict, files: list) -> str:
    files = sorted(files, key=lambda f: (f["table"], f["file"]))
    storage.write_json(path, {"counts": dict(sorted(counts.items())), "files": files})
    return path


class WriteSummary(beam.PTransform):
    """``(counts, files)`` PCollections → ``folder/_summary.json``."""

    def __init__(self, folder: str):
        super().__init__()
        self.path = storage.join(folder, SUMMARY)

    def expand(self, inputs):
        counts, files = inputs
        totals = counts | "Sum" >> beam.CombinePerKey(sum) | "CountDict" >> beam.combiners.ToDict()
        listed = files | "FileList" >> beam.combiners.ToList()
        return (
            counts.pipeline
            | "SummaryPath" >> beam.Create([self.path])
            | "WriteSummary"
            >> beam.Map(_write, beam.pvalue.AsSingleton(totals), beam.pvalue.AsSingleton(listed))
        )


def read_summary(folder: str) -> dict:
    """The summary a finished pipeline wrote under ``folder``; removed once read."""
    path = storage.join(folder, SUMMARY)
    summary = storage.read_json(path)
    storage.delete(path)
    return summary


def tables_of(files: list[dict]) -> dict[str, dict]:
    """``{table: {"files": [...], "rows": {split: n}}}`` from the file records."""
    tables: dict[str, dict] = {}
    for f in files:
        entry = tables.setdefault(f["table"], {"files": [], "rows": {}})
        entry["files"].append(f"{f['table']}/{f['file']}")
        entry["rows"][f["split"]] = entry["rows"].get(f["split"], 0) + f["rows"]
    return tables

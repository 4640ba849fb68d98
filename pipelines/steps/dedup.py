"""Deduplicate unit rows by a content key: per key the lowest id is kept."""

from __future__ import annotations

import apache_beam as beam

DUPLICATES = "duplicates"


class KeepLowestId(beam.DoFn):
    """Input ``(key, rows)``; output the lowest-id row, the rest as duplicate records."""

    def __init__(self, kind: str):
        self.kind = kind
        self.duplicates = beam.metrics.Metrics.counter("dedup", f"duplicates_{kind}")

    def process(self, element):
        _, rows = element
        rows = sorted(rows, key=lambda r: r["id"])
        yield rows[0]
        for row in rows[1:]:
            self.duplicates.inc()
            yield beam.pvalue.TaggedOutput(
                DUPLICATES,
                {
                    "id": row["id"],
                    "duplicate_of": rows[0]["id"],
                    "corpus": row["corpus"],
                    "source": row["source"],
                    "kind": self.kind,
                },
            )


class Deduplicate(beam.PTransform):
    """Rows whose ``field`` is equal collapse onto the lowest id."""

    def __init__(self, field: str, kind: str):
        super().__init__()
        self.field, self.kind = field, kind

    def expand(self, rows):
        return (
            rows
            | "KeyBy" >> beam.Map(lambda r, f=self.field: (r[f], r))
            | "Group" >> beam.GroupByKey()
            | "KeepLowest"
            >> beam.ParDo(KeepLowestId(self.kind)).with_outputs(DUPLICATES, main="kept")
        )

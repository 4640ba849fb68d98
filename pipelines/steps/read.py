"""Read a corpus inside the job: match metadata files, group them, parse each group.

Nothing of the corpus passes through the driver or the job graph: the graph holds only the
``Source`` (root, split) and its globs. Utterance ids are made unique with a ``GroupByKey``
on the id.
"""

from __future__ import annotations

import apache_beam as beam
from apache_beam.io import fileio
from apache_beam.io.filesystem import FileMetadata

from pipelines.records import Reject, Utterance
from pipelines.sources import Source, keep_one


class ParseFiles(beam.DoFn):
    """``(key, paths)`` of one metadata group → its utterances and rejects, counted."""

    def __init__(self, source: Source):
        self.source = source
        self.files = beam.metrics.Metrics.counter("read", "metadata_groups")
        self.records = beam.metrics.Metrics.counter("read", "records")

    def process(self, element: tuple[str, list[str]]):
        key, paths = element
        self.files.inc()
        for record in self.source.parse(key, sorted(paths)):
            self.records.inc()
            if isinstance(record, Reject):
                beam.metrics.Metrics.counter("read", f"rejected_{record.reason}").inc()
            yield record


class ReadCorpus(beam.PTransform):
    """A pipeline root → the corpus's records (``Utterance`` or ``Reject``), spread out."""

    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def expand(self, root):
        source = self.source
        return (
            root
            | "Patterns" >> beam.Create(source.patterns())
            | "Match" >> fileio.MatchAll(fileio.EmptyMatchTreatment.ALLOW)
            | "KeyByGroup" >> beam.Map(lambda m: (source.key(_path(m)), _path(m)))
            | "GroupFiles" >> beam.GroupByKey()
            | "Parse" >> beam.ParDo(ParseFiles(source))
            | "Spread" >> beam.Reshuffle()
        )


def _path(match: FileMetadata) -> str:
    return match.path


class UniqueIds(beam.PTransform):
    """Utterances sharing an id keep one (``keep_one``); the rest become rejects."""

    def expand(self, records):
        rejects = records | "Rejects" >> beam.Filter(lambda r: isinstance(r, Reject))
        unique = (
            records
            | "Utterances" >> beam.Filter(lambda r: isinstance(r, Utterance))
            | "ById" >> beam.Map(lambda u: (u.id, u))
            | "GroupById" >> beam.GroupByKey()
            | "KeepOne" >> beam.FlatMapTuple(keep_one)
        )
        return (rejects, unique) | "Records" >> beam.Flatten()

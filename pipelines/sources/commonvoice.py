"""Common Voice as downloaded: ``<lang>/clips/*.mp3`` + split TSVs (``validated.tsv``…).

Read with ``csv.QUOTE_NONE``: quotes in real sentences are unbalanced. Columns used:
``client_id`` (speaker), ``path`` (clip name), ``sentence``; a row with more or fewer
cells than the header is malformed. The first releases list clip names without ``.mp3``;
the suffix is added to such a name. Many speakers read one sentence; that is not
duplication. The TSV is streamed inside the job.
"""

from __future__ import annotations

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import PathEscape, Records, Source, inside, reject, tsv_table
from schemas import reasons
from speechinstruct import storage

CORPUS = "commonvoice"
DEFAULT_SPLIT = "validated"
REQUIRED = ("client_id", "path", "sentence")


class CommonVoice(Source):
    """Clips listed in ``<root>/<split>.tsv`` (``validated``, ``train``, ``dev``, ``test``…)."""

    corpus = CORPUS

    def __init__(self, root: str, split: str | None = None):
        super().__init__(root, split or DEFAULT_SPLIT)

    def patterns(self) -> list[str]:
        return [storage.join(self.root, f"{self.split}.tsv")]

    def parse(self, tsv: str, paths: list[str]) -> Records:
        clips, tsv_name = storage.join(self.root, "clips"), storage.name(tsv)
        with storage.text_stream(tsv) as f:
            header, rows = tsv_table(f)
            missing = [c for c in REQUIRED if c not in header]
            if missing:
                detail = f"{tsv_name}: header lacks {missing}"
                yield reject(CORPUS, tsv_name, reasons.BAD_METADATA, detail)
                return
            for lineno, row in rows:
                yield _record(
                    dict(zip(header, row, strict=False)),
                    len(row) == len(header),
                    clips,
                    self.split,
                    f"{tsv_name}:{lineno}",
                )


def _record(row: dict, complete: bool, clips: str, split: str, where: str):
    name = row.get("path") or ""
    id_ = name[:-4] if name.endswith(".mp3") else name or where
    if name and "." not in storage.name(name):
        name += ".mp3"  # Common Voice 1 and 2 list bare clip names
    if not complete or not name or not row.get("client_id"):
        return reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: malformed row")
    try:
        path = inside(clips, name)
    except PathEscape as e:
        return reject(CORPUS, id_, reasons.PATH_ESCAPE, f"{where}: {e}")
    source = AudioSource(path)
    text = " ".join((row.get("sentence") or "").split())
    if not text:
        return reject(CORPUS, id_, reasons.EMPTY_TEXT, f"{where}: empty sentence", source)
    if "\ufffd" in text:
        return reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: sentence not UTF-8", source)
    return Utterance(id_, CORPUS, split, row["client_id"], text, source)


def read(root: str, split: str | None = None) -> Records:
    return CommonVoice(root, split).records()

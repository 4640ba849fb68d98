"""Common Voice as downloaded: ``<lang>/clips/*.mp3`` + split TSVs (``validated.tsv``…).

Read with ``csv.QUOTE_NONE``: quotes in real sentences are unbalanced. Columns used:
``client_id`` (speaker), ``path`` (clip name), ``sentence``; a row with more or fewer
cells than the header is malformed. The first releases list clip names without ``.mp3``;
such a name is looked up with the suffix added. Many speakers read one sentence; that is
not duplication.
"""

from __future__ import annotations

from pathlib import Path

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import PathEscape, Records, inside, open_text, reject, tsv_table
from schemas import reasons

CORPUS = "commonvoice"
DEFAULT_SPLIT = "validated"
REQUIRED = ("client_id", "path", "sentence")


def read(root: str, split: str | None = None) -> Records:
    """Clips listed in ``<root>/<split>.tsv`` (``validated``, ``train``, ``dev``, ``test``…)."""
    split = split or DEFAULT_SPLIT
    tsv = Path(root) / f"{split}.tsv"
    if not tsv.is_file():
        found = sorted(p.stem for p in Path(root).glob("*.tsv")) if Path(root).is_dir() else []
        raise FileNotFoundError(f"Common Voice split file not found: {tsv}; found: {found}")
    clips = Path(root) / "clips"
    with open_text(tsv) as f:
        header, rows = tsv_table(f)
        missing = [c for c in REQUIRED if c not in header]
        if missing:
            yield reject(
                CORPUS, f"{split}.tsv", reasons.BAD_METADATA, f"{tsv.name}: header lacks {missing}"
            )
            return
        for lineno, row in rows:
            yield _record(
                dict(zip(header, row, strict=False)),
                len(row) == len(header),
                clips,
                split,
                f"{tsv.name}:{lineno}",
            )


def _record(row: dict, complete: bool, clips: Path, split: str, where: str):
    name = row.get("path") or ""
    id_ = Path(name).stem if name.endswith(".mp3") else name or where
    if name and not Path(name).suffix and not (clips / name).is_file():
        name += ".mp3"  # Common Voice 1 and 2 list bare clip names
    if not complete or not name or not row.get("client_id"):
        return reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: malformed row")
    try:
        path = inside(clips, name)
    except PathEscape as e:
        return reject(CORPUS, id_, reasons.PATH_ESCAPE, f"{where}: {e}")
    source = AudioSource(str(path))
    text = " ".join((row.get("sentence") or "").split())
    if not path.is_file():
        return reject(CORPUS, id_, reasons.MISSING_AUDIO, f"{where}: no clips/{name}", source)
    if not text:
        return reject(CORPUS, id_, reasons.EMPTY_TEXT, f"{where}: empty sentence", source)
    if "\ufffd" in text:
        return reject(CORPUS, id_, reasons.BAD_METADATA, f"{where}: sentence not UTF-8", source)
    return Utterance(id_, CORPUS, split, row["client_id"], text, source)

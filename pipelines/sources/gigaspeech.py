"""GigaSpeech as downloaded: ``GigaSpeech.json`` → ``audios[]`` → ``segments[]``.

The metadata file is large (GBs for XL), so it is streamed with ``ijson`` inside the job.
Audio lives at ``audios[].path`` (``audio/<source>/P…/<aid>.opus``) relative to the corpus root.
Segments whose ``text_tn`` holds a garbage tag are rejected; punctuation tags are turned
into punctuation (``restore``) or dropped (``strip``).
"""

from __future__ import annotations

import re

import ijson

from pipelines.records import AudioSource, Utterance
from pipelines.sources.base import PathEscape, Records, Source, inside, reject
from schemas import reasons
from speechinstruct import storage

CORPUS = "gigaspeech"
GARBAGE_TAGS = ("<SIL>", "<MUSIC>", "<NOISE>", "<OTHER>")
PUNCTUATION_TAGS = {
    "<COMMA>": ",",
    "<PERIOD>": ".",
    "<QUESTIONMARK>": "?",
    "<EXCLAMATIONPOINT>": "!",
}
SUBSETS = ("XS", "S", "M", "L", "XL", "DEV", "TEST")  # spelled ``{XS}``… in ``subsets``
_TAG = re.compile(r"\s*(" + "|".join(map(re.escape, PUNCTUATION_TAGS)) + r")")


def clean_text(text_tn: str, punctuation: str = "restore") -> str:
    """``text_tn`` with punctuation tags restored as marks (or stripped), spaces normalised."""
    if punctuation not in ("restore", "strip"):
        raise ValueError(f"punctuation must be 'restore' or 'strip', not {punctuation!r}")
    keep = punctuation == "restore"
    text = _TAG.sub(lambda m: PUNCTUATION_TAGS[m.group(1)] if keep else "", text_tn)
    return " ".join(text.split())


def subset(split: str) -> str:
    """``XS``, ``xs`` or ``{XS}`` → ``XS``; an unknown subset is an error."""
    name = split.strip().strip("{}").upper()
    if name not in SUBSETS:
        raise ValueError(f"unknown GigaSpeech subset {split!r}; choose from {', '.join(SUBSETS)}")
    return name


class GigaSpeech(Source):
    """Segments in subset ``split`` (``XS`` reads segments tagged ``{XS}``), or all."""

    corpus = CORPUS

    def __init__(self, root: str, split: str | None = None, punctuation: str = "restore"):
        super().__init__(root, subset(split) if split else None)
        self.punctuation = punctuation

    def patterns(self) -> list[str]:
        return [storage.join(self.root, "GigaSpeech.json")]

    def parse(self, meta: str, paths: list[str]) -> Records:
        tag = f"{{{self.split}}}" if self.split else None
        with storage.open_read(meta) as f:
            try:
                for n, audio in enumerate(ijson.items(f, "audios.item", use_float=True)):
                    if not isinstance(audio, dict):
                        yield reject(
                            CORPUS,
                            f"audios[{n}]",
                            reasons.BAD_METADATA,
                            "audio entry is not an object",
                        )
                        continue
                    yield from _read_audio(
                        self.root, audio, n, tag, self.split or "all", self.punctuation
                    )
            except ijson.JSONError as e:
                detail = f"unreadable JSON: {e}"
                yield reject(CORPUS, "GigaSpeech.json", reasons.BAD_METADATA, detail)


def read(root: str, split: str | None = None, punctuation: str = "restore") -> Records:
    return GigaSpeech(root, split, punctuation).records()


def _read_audio(root: str, audio: dict, n: int, tag: str | None, split: str, punctuation: str):
    aid = str(audio.get("aid") or f"audios[{n}]")
    segments = audio.get("segments")
    if not isinstance(segments, list) or not isinstance(audio.get("path"), str):
        yield reject(CORPUS, aid, reasons.BAD_METADATA, "audio entry lacks 'path' or 'segments'")
        return
    try:
        path = inside(root, audio["path"])
        escape = None
    except PathEscape as e:
        path, escape = storage.join(root, storage.name(audio["path"])), str(e)
    duration = audio.get("duration")
    for i, seg in enumerate(segments):
        if not isinstance(seg, dict):
            yield reject(CORPUS, f"{aid}_seg{i}", reasons.BAD_METADATA, "segment is not an object")
            continue
        sid = str(seg.get("sid") or f"{aid}_seg{i}")
        if tag is not None and not isinstance(seg.get("subsets"), list):
            yield reject(CORPUS, sid, reasons.BAD_METADATA, "segment lacks a 'subsets' list")
            continue
        if tag is not None and tag not in seg["subsets"]:
            continue
        yield _segment(seg, sid, path, escape, duration, audio, split, punctuation)


def _segment(seg, sid, path, escape, duration, audio, split, punctuation):
    begin, end, text_tn = seg.get("begin_time"), seg.get("end_time"), seg.get("text_tn")
    if not all(isinstance(v, int | float) for v in (begin, end)) or not isinstance(text_tn, str):
        return reject(CORPUS, sid, reasons.BAD_METADATA, "segment lacks begin/end/text_tn")
    source = AudioSource(path, float(begin), float(end))
    if escape:
        return reject(CORPUS, sid, reasons.PATH_ESCAPE, escape, source)
    garbage = [t for t in GARBAGE_TAGS if t in text_tn]
    if garbage:
        return reject(CORPUS, sid, reasons.GARBAGE_TAG, f"text_tn has {' '.join(garbage)}", source)
    if end <= begin or begin < 0:
        return reject(CORPUS, sid, reasons.BAD_SEGMENT, f"[{begin}, {end}]", source)
    if isinstance(duration, int | float) and end > duration + 0.1:
        return reject(CORPUS, sid, reasons.BAD_SEGMENT, f"end {end}s > audio {duration}s", source)
    text = clean_text(text_tn, punctuation)
    if not text.strip(",.?! "):
        return reject(CORPUS, sid, reasons.EMPTY_TEXT, f"text_tn {text_tn!r}", source)
    speaker = seg.get("speaker") or audio.get("speaker") or "N/A"
    speaker = str(audio.get("aid")) if speaker == "N/A" else str(speaker)
    return Utterance(sid, CORPUS, split, speaker, text, source)

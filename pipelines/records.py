"""The records that flow through the builder: an utterance to decode, or a reject."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AudioSource:
    """Where an utterance's audio is: a file, and optionally a segment of it in seconds."""

    path: str
    start_s: float | None = None
    end_s: float | None = None

    def to_row(self) -> dict:
        return {"path": self.path, "start_s": self.start_s, "end_s": self.end_s}


@dataclass(frozen=True, slots=True)
class Utterance:
    """One utterance as a corpus reader yields it; text is None for untranscribed audio."""

    id: str
    corpus: str
    split: str
    speaker: str
    text: str | None
    source: AudioSource


@dataclass(frozen=True, slots=True)
class Reject:
    """An input record that cannot be used, with a stable reason code (schemas.reasons)."""

    id: str
    corpus: str
    source: AudioSource | None
    stage: str
    reason: str
    detail: str

    def to_row(self) -> dict:
        return {
            "id": self.id,
            "corpus": self.corpus,
            "source": None if self.source is None else self.source.to_row(),
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
        }

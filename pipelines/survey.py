"""Read a corpus and decode every utterance, counting what is usable and what is rejected."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipelines import sources
from pipelines.audio import AudioLimits, decode
from pipelines.records import Reject
from schemas import SAMPLE_RATE


@dataclass
class Survey:
    corpus: str
    read: int = 0
    usable: int = 0
    audio_s: float = 0.0
    rejects: Counter = field(default_factory=Counter)
    examples: list[Reject] = field(default_factory=list)

    def line(self) -> str:
        why = ", ".join(f"{r}={n}" for r, n in sorted(self.rejects.items())) or "none"
        return (
            f"{self.corpus:<12} read {self.read:>4}  usable {self.usable:>4} "
            f"({self.audio_s / 60:5.1f} min)  rejected {sum(self.rejects.values()):>3}: {why}"
        )


def survey(
    corpus: str, root: str, split: str | None = None, limits: AudioLimits = AudioLimits()
) -> Survey:
    """Counts for one corpus; read = usable + rejected."""
    result = Survey(corpus)
    for record in sources.read(corpus, root, split):
        result.read += 1
        outcome = record if isinstance(record, Reject) else decode(record, limits)
        if isinstance(outcome, Reject):
            result.rejects[outcome.reason] += 1
            result.examples.append(outcome)
        else:
            result.usable += 1
            result.audio_s += len(outcome) / SAMPLE_RATE
    return result

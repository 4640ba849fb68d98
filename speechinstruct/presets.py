"""Presets: each trainer's numbers live in YAML files beside it, read into a frozen dataclass.

The stage trainer (``training/configs``), T2U (``speechinstruct/t2u/configs``) and
init-model (``training/configs/tiny/model.yaml``) read theirs here; the vocoder room,
which imports nothing of ours, reads its own the same way (``vocoder/train.py``).
A preset is named by a path to a YAML file or by its name under the trainer's folder
(``tiny``, ``paper/stage2``); flags given on the command line override its keys.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import yaml


def names(folder: Path) -> list[str]:
    """The presets shipped in ``folder``, as names that ``load`` takes."""
    return sorted(str(p.relative_to(folder).with_suffix("")) for p in folder.rglob("*.yaml"))


def load(cls, preset: str | Path, folder: Path, **overrides):
    """``cls`` from a YAML preset (a path, or a name under ``folder``), overrides applied."""
    path = Path(preset)
    if not path.is_file():
        path = folder / f"{preset}.yaml"
    if not path.is_file():
        raise FileNotFoundError(
            f"no preset {str(preset)!r}: give a YAML file or one of {', '.join(names(folder))}"
        )
    raw = yaml.safe_load(path.read_text()) or {}
    unknown = set(raw) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return cls(**{k: _tuples(v) for k, v in raw.items()})


def _tuples(value):
    """YAML lists as tuples, so presets stay hashable and frozen."""
    return tuple(map(_tuples, value)) if isinstance(value, list) else value

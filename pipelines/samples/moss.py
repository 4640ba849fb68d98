"""moss-002-sft-style chats: a JSON array of ``{"plain_text", "prefix"}`` records."""

from __future__ import annotations

import json
from pathlib import Path

from speechinstruct.texts import chats

PREFIX = "You are an AI assistant whose name is MOSS. You answer helpfully and honestly."


def render(turns: tuple[tuple[str, str], ...]) -> str:
    return " ".join(f"[Human]: {h} <eoh> [MOSS]: {a} <eoa>" for h, a in turns)


def write(out: Path) -> list[dict]:
    records = [{"plain_text": render(turns), "prefix": PREFIX} for turns in chats()]
    path = out / "moss" / "en_helpfulness.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False), encoding="utf-8")
    return records

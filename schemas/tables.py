"""The published tables: one pyarrow schema per table, defined once (DESIGN.md §4).

Each table is a list of fields; its pyarrow schema carries ``schema_version`` in its
metadata and the HF ``datasets.Features`` are derived from that same schema.
Unit columns are ``list<int16>`` (K ≤ 32767).
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1.1"
UNIT_TYPE = pa.list_(pa.int16())
MAX_UNITS = 32767
SAMPLE_RATE = 16_000  # Hz: every unit row is 50 Hz frames of 16 kHz mono audio
HOP = 320  # samples per unit frame

SOURCE = pa.struct(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
    ]
)
EXTRACTOR = pa.struct(
    [
        pa.field("name", pa.string(), nullable=False),
        pa.field("layer", pa.int16()),
        pa.field("k", pa.int32(), nullable=False),
        pa.field("centroids_hash", pa.string(), nullable=False),
    ]
)


def _field(name: str, type_: pa.DataType, nullable: bool = False) -> pa.Field:
    return pa.field(name, type_, nullable=nullable)


_FIELDS: dict[str, list[pa.Field]] = {
    "units": [
        _field("id", pa.string()),
        _field("corpus", pa.string()),
        _field("split", pa.string()),
        _field("speaker", pa.string()),
        _field("text", pa.string(), nullable=True),
        _field("units", UNIT_TYPE),
        _field("durations", pa.list_(pa.int32())),
        _field("num_frames", pa.int32()),
        _field("duration_s", pa.float64()),
        _field("source", SOURCE),
        _field("extractor", EXTRACTOR),
        _field("content_hash", pa.string()),
    ],
    "rejects": [
        _field("id", pa.string()),
        _field("corpus", pa.string()),
        _field("source", SOURCE, nullable=True),
        _field("stage", pa.string()),
        _field("reason", pa.string()),
        _field("detail", pa.string()),
    ],
    "duplicates": [
        _field("id", pa.string()),
        _field("duplicate_of", pa.string()),
        _field("corpus", pa.string()),
        _field("source", SOURCE, nullable=True),
        _field("kind", pa.string()),
    ],
    "pretrain": [
        _field("id", pa.string()),
        _field("units", UNIT_TYPE),
    ],
    "cross_modal": [
        _field("id", pa.string()),
        _field("task", pa.string()),
        _field("description", pa.string()),
        _field("units", UNIT_TYPE),
        _field("text", pa.string()),
        _field("prompt", pa.string()),
        _field("response", pa.string()),
    ],
    "chain_of_modality": [
        _field("id", pa.string()),
        _field("format", pa.string()),
        _field("text_instruction", pa.string()),
        _field("text_response", pa.string()),
        _field("speech_instruction", UNIT_TYPE),
        _field("speech_response", UNIT_TYPE),
        _field("prompt", pa.string()),
        _field("response", pa.string()),
    ],
    "text_chat": [
        _field("id", pa.string()),
        _field("human", pa.list_(pa.string())),
        _field("answer", pa.list_(pa.string())),
    ],
    "eval": [
        _field("id", pa.string()),
        _field("role", pa.string()),
        _field("text_instruction", pa.string()),
        _field("text_response", pa.string()),
        _field("speech_instruction", UNIT_TYPE),
        _field("speech_response", UNIT_TYPE),
        _field("source", pa.string()),  # speechinstruct (the shipped 60) or eval-extra
    ],
}

TABLES: tuple[str, ...] = tuple(_FIELDS)

# Allowed values of enumerated string columns, checked by validate().
ENUMS: dict[tuple[str, str], frozenset[str]] = {
    ("cross_modal", "task"): frozenset({"asr", "tts"}),
    ("chain_of_modality", "format"): frozenset({"s2s", "s2t", "t2s", "t2t"}),
    ("duplicates", "kind"): frozenset({"audio", "units"}),
    ("eval", "source"): frozenset({"speechinstruct", "eval-extra"}),
}


def schema(table: str) -> pa.Schema:
    """The pyarrow schema of ``table``, with its version in the metadata."""
    if table not in _FIELDS:
        raise KeyError(f"unknown table {table!r}; known: {', '.join(TABLES)}")
    return pa.schema(
        _FIELDS[table],
        metadata={"schema_version": SCHEMA_VERSION, "table": table},
    )


def features(table: str):
    """The HF ``datasets.Features`` of ``table``, derived from its pyarrow schema."""
    from datasets import Features

    return Features.from_arrow_schema(schema(table))


def empty_table(table: str) -> pa.Table:
    return schema(table).empty_table()


def to_table(table: str, rows: list[dict]) -> pa.Table:
    """Build ``table`` from row dicts; raises if a row does not fit the schema."""
    return pa.Table.from_pylist(rows, schema=schema(table))

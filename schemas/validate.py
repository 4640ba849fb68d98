"""Check a table against its published schema, naming the column and row at fault."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from schemas.reasons import REASONS
from schemas.tables import ENUMS, MAX_UNITS, UNIT_TYPE, schema


class SchemaError(ValueError):
    """A table does not match its schema; the message names table, column and row."""

    def __init__(self, table: str, column: str, row: int | None, problem: str):
        where = f"table {table!r}, column {column!r}" + ("" if row is None else f", row {row}")
        super().__init__(f"{where}: {problem}")
        self.table, self.column, self.row = table, column, row


def _first(mask: pa.ChunkedArray | pa.Array) -> int | None:
    """Index of the first true value of a boolean array (nulls count as false)."""
    hits = np.flatnonzero(pc.fill_null(mask, False).to_numpy(zero_copy_only=False))
    return int(hits[0]) if len(hits) else None


def _check_units(name: str, table: pa.Table, column: str, upper: pa.Array | int) -> None:
    col = table.column(column)
    lengths = pc.list_value_length(col)
    parents = np.repeat(np.arange(len(table)), lengths.to_numpy(zero_copy_only=False))
    values = pc.list_flatten(col).to_numpy(zero_copy_only=False).astype(np.int64)
    bound = np.broadcast_to(np.asarray(upper), (len(table),))[parents]
    bad = np.flatnonzero((values < 0) | (values >= bound))
    if len(bad):
        i = int(bad[0])
        raise SchemaError(
            name, column, int(parents[i]), f"unit {values[i]} outside [0, {bound[i]})"
        )


def validate(table: pa.Table, name: str | None = None) -> pa.Table:
    """Raise ``SchemaError`` unless ``table`` fits the schema of ``name``; return it."""
    if name is None:
        meta = table.schema.metadata or {}
        name = meta.get(b"table", b"").decode() or None
        if name is None:
            raise ValueError("table has no 'table' metadata: pass the table name")
    expected = schema(name)
    for field in expected:
        if field.name not in table.column_names:
            raise SchemaError(name, field.name, None, "missing column")
        actual = table.schema.field(field.name).type
        if actual != field.type:
            raise SchemaError(name, field.name, None, f"type {actual}, expected {field.type}")
        if not field.nullable:
            row = _first(pc.is_null(table.column(field.name)))
            if row is not None:
                raise SchemaError(name, field.name, row, "null in a non-nullable column")
    extra = set(table.column_names) - set(expected.names)
    if extra:
        raise SchemaError(name, sorted(extra)[0], None, "column not in the schema")

    ids = table.column("id").to_pylist()
    seen: dict[str, int] = {}
    for i, id_ in enumerate(ids):
        if not id_:
            raise SchemaError(name, "id", i, "empty id")
        if id_ in seen:
            raise SchemaError(name, "id", i, f"duplicate id {id_!r} (first at row {seen[id_]})")
        seen[id_] = i

    for (tname, column), allowed in ENUMS.items():
        if tname == name:
            row = _first(pc.invert(pc.is_in(table.column(column), pa.array(sorted(allowed)))))
            if row is not None:
                value = table.column(column)[row].as_py()
                raise SchemaError(name, column, row, f"{value!r} not one of {sorted(allowed)}")

    if name == "rejects":
        row = _first(pc.invert(pc.is_in(table.column("reason"), pa.array(sorted(REASONS)))))
        if row is not None:
            value = table.column("reason")[row].as_py()
            raise SchemaError(name, "reason", row, f"unknown reason code {value!r}")

    for field in expected:
        if field.type == UNIT_TYPE:
            upper = MAX_UNITS
            if name == "units":
                upper = pc.struct_field(table.column("extractor"), "k").to_numpy()
            _check_units(name, table, field.name, upper)

    if name == "units":
        _check_durations(table)
    return table


def _check_durations(table: pa.Table) -> None:
    units_len = pc.list_value_length(table.column("units"))
    row = _first(pc.not_equal(units_len, pc.list_value_length(table.column("durations"))))
    if row is not None:
        raise SchemaError("units", "durations", row, "length differs from units")
    durations = table.column("durations").to_pylist()
    frames = table.column("num_frames").to_pylist()
    for i, (runs, total) in enumerate(zip(durations, frames, strict=True)):
        if any(d < 1 for d in runs):
            raise SchemaError("units", "durations", i, "run length below 1")
        if sum(runs) != total:
            raise SchemaError("units", "num_frames", i, f"{total} != sum of durations")

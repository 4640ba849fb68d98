"""The data contract: one schema per published table, its HF Features, and validation."""

from schemas.reasons import REASONS
from schemas.tables import (
    HOP,
    SAMPLE_RATE,
    SCHEMA_VERSION,
    TABLES,
    UNIT_TYPE,
    empty_table,
    features,
    schema,
    to_table,
)
from schemas.validate import SchemaError, validate

__all__ = [
    "HOP",
    "REASONS",
    "SAMPLE_RATE",
    "SCHEMA_VERSION",
    "TABLES",
    "UNIT_TYPE",
    "SchemaError",
    "empty_table",
    "features",
    "schema",
    "to_table",
    "validate",
]

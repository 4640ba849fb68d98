"""Stable reject reason codes (DESIGN.md §11). Other tools match on these strings."""

from __future__ import annotations

MISSING_AUDIO = "missing_audio"
DECODE_ERROR = "decode_error"
EMPTY_TEXT = "empty_text"
GARBAGE_TAG = "garbage_tag"
BAD_SEGMENT = "bad_segment"
TOO_SHORT = "too_short"
TOO_LONG = "too_long"
SILENT = "silent"
PATH_ESCAPE = "path_escape"
BAD_METADATA = "bad_metadata"

REASONS: frozenset[str] = frozenset(
    {
        MISSING_AUDIO,
        DECODE_ERROR,
        EMPTY_TEXT,
        GARBAGE_TAG,
        BAD_SEGMENT,
        TOO_SHORT,
        TOO_LONG,
        SILENT,
        PATH_ESCAPE,
        BAD_METADATA,
    }
)

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
# building SpeechInstruct
BAD_CHAT = "bad_chat"  # a chat record that does not parse as moss-002-sft plain_text
NOT_ENGLISH = "not_english"
LONG_RESPONSE = "long_response"  # over the word limit of chain-of-modality data (35)
NO_SPEECH = "no_speech"  # the speech backend produced no units for a text

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
        BAD_CHAT,
        NOT_ENGLISH,
        LONG_RESPONSE,
        NO_SPEECH,
    }
)

"""Text-to-unit (T2U): a transformer encoder-decoder from text to reduced units (§3.2)."""

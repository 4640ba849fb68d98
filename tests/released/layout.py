"""The SpeechGPT-7B-cm tokenizer's on-disk layout, in miniature, made the way the release's is.

LLaMA's sentencepiece ``tokenizer.model`` (here: a small BPE trained on our sentences, with
byte fallback and LLaMA's ``<unk>``/``<s>``/``</s>`` at ids 0/1/2), ``added_tokens.json``
with ``<0>…<999>``, ``<sosp>``, ``<eosp>``, ``[Human]``, ``[SpeechGPT]``, ``<eoh>``,
``<eos>`` numbered after the sentencepiece vocabulary in that order (SOURCES.md), and the
``tokenizer_config.json``/``special_tokens_map.json`` transformers 4.29 wrote.

Only the standard library and ``sentencepiece``: ``record_ids.py`` runs this in a side
environment with transformers 4.29 to record the ids the reference's tokenizer produced.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

UNITS = 1000
ADDED = [f"<{u}>" for u in range(UNITS)] + [
    "<sosp>",
    "<eosp>",
    "[Human]",
    "[SpeechGPT]",
    "<eoh>",
    "<eos>",
]
SENTENCES = [
    "You are an AI assistant whose name is SpeechGPT.",
    "SpeechGPT is a intrinsic cross-modal conversational language model that is developed by "
    "Fudan University.",
    "SpeechGPT can understand and communicate fluently with human through speech or text "
    "chosen by the user.",
    "It can perceive cross-modal inputs and generate cross-modal outputs.",
    "What is the capital of France? The capital of France is Paris.",
    "Please tell me a short story about a cat and a dog who became friends.",
    "How do I make a cup of tea? Boil water, add the tea leaves, wait three minutes.",
    "Transcribe the speech into text. Speak the text aloud. Answer the question.",
    "The quick brown fox jumps over the lazy dog 1234567890 times!",
    "Numbers like 3.14, 2023 and 42 appear in text; so do dashes - and (brackets).",
]


def _corpus() -> list[str]:
    words = " ".join(SENTENCES).split()
    return SENTENCES * 20 + [" ".join(words[i : i + 7]) for i in range(len(words))]


def train_model(vocab_size: int = 400) -> bytes:
    """A deterministic sentencepiece BPE model (one thread, no sampling of the input)."""
    import sentencepiece as spm

    out = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_corpus()),
        model_writer=out,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        num_threads=1,
        shuffle_input_sentence=False,
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        minloglevel=2,
    )
    return out.getvalue()


def _token(content: str) -> dict:
    return {
        "__type": "AddedToken",
        "content": content,
        "lstrip": False,
        "normalized": True,
        "rstrip": False,
        "single_word": False,
    }


def write_tokenizer(folder: str | Path) -> str:
    """Write the released tokenizer files into ``folder``; returns the model's sha256."""
    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = train_model()
    (folder / "tokenizer.model").write_bytes(model)
    size = spm.SentencePieceProcessor(model_proto=model).get_piece_size()
    added = {token: size + i for i, token in enumerate(ADDED)}
    (folder / "added_tokens.json").write_text(json.dumps(added, indent=2))
    special = {
        "bos_token": _token("<s>"),
        "eos_token": _token("</s>"),
        "unk_token": _token("<unk>"),
    }
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 1000000000000000019884624838656,
        "pad_token": None,
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        **special,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return hashlib.sha256(model).hexdigest()

"""``speechgpt init-model``: a small random-init Llama-architecture model and a BPE tokenizer
trained on the dataset's text, so the whole chain runs with no download. Real users pass
a local LLaMA folder to ``speechgpt train --base-model`` instead.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from datasets import get_dataset_config_names
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from speechinstruct import descriptions, presets
from speechinstruct.templates import SYSTEM
from training.config import CONFIGS
from training.data import load_split


@dataclass(frozen=True, slots=True)
class ModelPreset:
    """A model size (``configs/model/tiny.yaml``) and its tokenizer's vocabulary."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab: int


def dataset_texts(data: str) -> list[str]:
    texts = [SYSTEM, *descriptions.load("asr"), *descriptions.load("tts")]
    wanted = {
        "cross_modal": ["text"],
        "chain_of_modality": ["text_instruction", "text_response"],
        "text_chat": ["human", "answer"],
    }
    for config, columns in wanted.items():
        if config not in get_dataset_config_names(data):
            continue  # a dataset published before text_chat existed
        rows = load_split(data, config, "train")
        for column in columns:
            for value in rows[column]:
                texts += value if isinstance(value, list) else [value]
    return texts


def train_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def build_model(preset: ModelPreset, tokenizer, seed: int) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=preset.hidden,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.heads,
        intermediate_size=preset.intermediate,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def run(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(prog="speechgpt init-model", description=__doc__)
    parser.add_argument("--preset", default="tiny", help="tiny or a YAML file")
    parser.add_argument("--data", required=True, help="a published SpeechInstruct dataset")
    parser.add_argument("--output", required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        preset = presets.load(ModelPreset, args.preset, CONFIGS / "model")
    except (FileNotFoundError, ValueError) as e:
        parser.error(str(e))
    tokenizer = train_tokenizer(dataset_texts(args.data), preset.vocab)
    model = build_model(preset, tokenizer, args.seed)
    model.save_pretrained(args.output)
    tokenizer.save_pretrained(args.output)
    params = sum(p.numel() for p in model.parameters())
    print(
        f"init-model: {params / 1e6:.2f}M parameters, vocabulary {len(tokenizer)} -> {args.output}"
    )
    return args.output

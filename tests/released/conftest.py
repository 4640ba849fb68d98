"""Tiny models in exactly the released SpeechGPT on-disk layouts, made at test time.

- ``released_cm``: an HF LLaMA folder as SpeechGPT-7B-cm ships: ``pytorch_model.bin``
  (float16 weights), a transformers-4.29 ``config.json`` (``torch_dtype: float16``, no
  ``num_key_value_heads``), LLaMA's sentencepiece tokenizer + ``added_tokens.json``
  (``layout.py``).
- ``released_com``: a LoRA adapter as peft 0.3 saved SpeechGPT-7B-com: the old
  ``adapter_config.json`` keys and ``adapter_model.bin`` without adapter names in its keys.
- ``released_vocoder``: ``config.json`` + ``vocoder.pt`` (a CodeHiFiGAN ``{"generator": …}``).
- ``kmeans_1000``: 1000 MFCC centroids (real speech frames), so units fit the release's K.
"""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from transformers import LlamaConfig, LlamaForCausalLM

from speechinstruct import kmeans
from speechinstruct.extractors import ExtractorSpec, UnitExtractor, build_features
from speechinstruct.units import format_units, reduce
from training.generate import load_wave
from training.released import META_INSTRUCTION

from . import layout

SHARED = Path(__file__).resolve().parents[3] / "shared"
REAL = SHARED / "real-speech"
PROMPT = SHARED / "released-samples" / "prompt_1.wav"
CONFIG_429 = {
    "architectures": ["LlamaForCausalLM"],
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "hidden_size": 64,
    "initializer_range": 0.02,
    "intermediate_size": 160,
    "max_position_embeddings": 2048,
    "model_type": "llama",
    "num_attention_heads": 4,
    "num_hidden_layers": 2,
    "pad_token_id": 0,
    "rms_norm_eps": 1e-06,
    "tie_word_embeddings": False,
    "torch_dtype": "float16",
    "transformers_version": "4.29.0",
    "use_cache": True,
}
VOCODER = {
    "resblock": "1",
    "upsample_rates": [5, 4, 4, 2, 2],
    "upsample_kernel_sizes": [11, 8, 8, 4, 4],
    "upsample_initial_channel": 32,
    "resblock_kernel_sizes": [3],
    "resblock_dilation_sizes": [[1, 3, 5]],
    "num_embeddings": 1000,
    "embedding_dim": 16,
    "model_in_dim": 16,
    "code_hop_size": 320,
    "f0": False,
    "sampling_rate": 16000,
    "dur_prediction_weight": 1.0,
    "dur_predictor_params": {
        "encoder_embed_dim": 16,
        "var_pred_hidden_dim": 16,
        "var_pred_kernel_size": 3,
        "var_pred_dropout": 0.5,
    },
}


def real_utterance() -> Path:
    """The shortest real utterance (its units fit the tiny configs' 512 tokens)."""
    return min(sorted(REAL.rglob("*.flac")), key=lambda p: sf.info(p).frames)


def write_cm(folder: Path, state: dict) -> Path:
    """``state`` (a tiny Llama's weights) as SpeechGPT-7B-cm is laid out on disk."""
    layout.write_tokenizer(folder)
    config = {**CONFIG_429, "vocab_size": 400 + len(layout.ADDED)}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    torch.save({k: v.half() for k, v in state.items()}, folder / "pytorch_model.bin")
    return folder


def write_com(folder: Path, scale: float, seed: int = 1) -> Path:
    """A LoRA adapter as peft 0.3 saved SpeechGPT-7B-com (``lora_B`` of std ``scale``)."""
    config = {
        "base_model_name_or_path": "/path/to/SpeechGPT-7B-cm",
        "bias": "none",
        "enable_lora": None,
        "fan_in_fan_out": False,
        "inference_mode": True,
        "lora_alpha": 16,
        "lora_dropout": 0.05,
        "merge_weights": False,
        "modules_to_save": None,
        "peft_type": "LORA",
        "r": 8,
        "target_modules": ["q_proj", "v_proj"],
        "task_type": "CAUSAL_LM",
    }
    (folder / "adapter_config.json").write_text(json.dumps(config, indent=2))
    generator = torch.Generator().manual_seed(seed)
    state, width = {}, CONFIG_429["hidden_size"]
    for layer in range(CONFIG_429["num_hidden_layers"]):
        for proj in ("q_proj", "v_proj"):
            name = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            state[f"{name}.lora_A.weight"] = torch.randn(8, width, generator=generator) * 0.1
            state[f"{name}.lora_B.weight"] = torch.randn(width, 8, generator=generator) * scale
    torch.save(state, folder / "adapter_model.bin")
    return folder


@pytest.fixture(scope="session")
def released_cm(tmp_path_factory) -> Path:
    """Random weights in the released layout: the model as downloaded, minus the training."""
    torch.manual_seed(0)
    config = {**CONFIG_429, "vocab_size": 400 + len(layout.ADDED)}
    state = LlamaForCausalLM(LlamaConfig(**config)).state_dict()
    return write_cm(tmp_path_factory.mktemp("SpeechGPT-7B-cm"), state)


@pytest.fixture(scope="session")
def released_com(tmp_path_factory) -> Path:
    return write_com(tmp_path_factory.mktemp("SpeechGPT-7B-com"), scale=0.1)


@pytest.fixture(scope="session")
def released_vocoder(tmp_path_factory) -> Path:
    from vocoder.hifigan import CodeGenerator, fairseq_state_dict

    folder = tmp_path_factory.mktemp("vocoder")
    torch.manual_seed(0)
    generator = CodeGenerator(VOCODER)
    torch.save({"generator": fairseq_state_dict(generator)}, folder / "vocoder.pt")
    (folder / "config.json").write_text(json.dumps(VOCODER, indent=2))
    return folder


@pytest.fixture(scope="session")
def kmeans_1000(tmp_path_factory) -> str:
    """1000 centroids drawn from the MFCC frames of real speech (the release's K)."""
    features = build_features(ExtractorSpec("mfcc"))
    frames = []
    for path in sorted(REAL.rglob("*.flac")):
        wave, _ = sf.read(path, dtype="float32")
        frames.append(np.asarray(features.features([wave])[0]))
    frames = np.concatenate(frames)
    rng = np.random.default_rng(0)
    centroids = frames[rng.choice(len(frames), 1000, replace=False)]
    path = tmp_path_factory.mktemp("kmeans") / "km1000.npy"
    kmeans.save(path, centroids, {"extractor": "mfcc"})
    return str(path)


@pytest.fixture(scope="session")
def imported(kmeans_1000, tmp_path_factory) -> dict:
    """Released-format lines written by the test (a typed and two spoken questions, with
    their answers), the release's sample rows, and damaged lines → import-speechinstruct."""
    from pipelines import import_speechinstruct

    work = tmp_path_factory.mktemp("imported")
    extractor = UnitExtractor(ExtractorSpec("mfcc"), kmeans_1000)

    def units_of(path) -> list[int]:
        return reduce(extractor([load_wave(path)])[0])[0].tolist()

    turns = {
        "What is the capital of France?": "[ta] Paris is the capital.; [ua] "
        "<sosp><5><6><7><8><eosp>",
        format_units(units_of(PROMPT)): "please tell me a story; [ta] Once upon a time.; "
        "[ua] <sosp><9><10><11><eosp>",
        format_units(units_of(real_utterance())): "he hoped for stew; [ta] Stew sounds good.; "
        "[ua] <sosp><12><13><eosp>",
        "<sosp><20><21><eosp>": "sort [3, 1, 2] please; [ta] It is [1, 2, 3].",  # s2t
    }
    lines = [
        json.dumps(
            {"prefix": META_INSTRUCTION, "plain_text": f"[Human]: {q}<eoh>. [SpeechGPT]: {a}<eoa>."}
        )
        for q, a in turns.items()
    ]
    damaged = [
        "{not json",
        json.dumps({"prefix": "x"}),
        json.dumps(["a", "list"]),
        json.dumps({"prefix": "", "plain_text": "[Human]: hello <eoh> and no answer"}),
        json.dumps(
            {
                "prefix": "",
                "plain_text": "[Human]: hi<eoh>. [SpeechGPT]: ok<eoa>. "
                "[Human]: more<eoh>. [SpeechGPT]: sure<eoa>",
            }
        ),  # two turns in one line
        json.dumps(
            {
                "prefix": "",
                "plain_text": "[Human]: x This is input: "
                "<sosp><4000><eosp><eoh> [SpeechGPT]: big<eoa>",
            }
        ),
    ]
    mine = work / "mine.jsonl"
    mine.write_text("\n".join(lines + damaged) + "\n")
    samples = SHARED / "released-samples"
    inputs = [
        str(samples / "cross_modal_instruction.sample.jsonl"),
        str(samples / "chain_of_modality_instruction.sample.jsonl"),
        str(mine),
    ]
    info = import_speechinstruct.run(["--input", *inputs, "--output", str(work / "ds")])
    return {"ds": str(work / "ds"), "info": info, "turns": turns, "damaged": len(damaged)}


@pytest.fixture(scope="session")
def learned(imported, released_cm, tmp_path_factory) -> Path:
    """The released-layout base fine-tuned (stage 2, full) on the imported rows until greedy
    decoding repeats them: answers a test knows."""
    from training import train
    from training.config import CONFIGS

    work = tmp_path_factory.mktemp("learned")
    cfg = yaml.safe_load((CONFIGS / "tiny" / "stage2.yaml").read_text())
    cfg.update(data_config="chain_of_modality", steps=150, save_steps=1000, warmup_steps=5)
    (work / "learn.yaml").write_text(yaml.safe_dump(cfg))
    train.run(
        [
            "--stage",
            "2",
            "--config",
            str(work / "learn.yaml"),
            "--data",
            imported["ds"],
            "--base-model",
            str(released_cm),
            "--output",
            str(work / "model"),
        ]
    )
    return work / "model"


@pytest.fixture(scope="session")
def learned_release(learned, tmp_path_factory) -> tuple[Path, Path]:
    """The ``learned`` weights written back in the released layout (float16
    ``pytorch_model.bin``, 4.29 config, sentencepiece tokenizer) with a peft-0.3 adapter
    that changes nothing (``lora_B`` zero, as an untrained LoRA): a cm + com pair whose
    answers a test knows."""
    from safetensors.torch import load_file

    state = load_file(learned / "model.safetensors")
    cm = write_cm(tmp_path_factory.mktemp("learned-cm"), state)
    return cm, write_com(tmp_path_factory.mktemp("learned-com"), scale=0.0)

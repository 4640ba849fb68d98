"""Record the ids transformers 4.29's slow ``LlamaTokenizer`` gives on the miniature release layout.

The released SpeechGPT-7B-cm was trained and served with transformers 4.29, loading its
tokenizer as ``LlamaTokenizer.from_pretrained(model_path)`` (the slow, sentencepiece-backed
one). That version's handling of added tokens -- splitting the text on them, stripping the
whitespace on both sides of each, and passing every remaining text chunk to sentencepiece
separately so that each chunk starts with ``▁`` -- was changed by later versions. This script
writes the tokenizer of ``layout.py`` into a temporary folder, tokenizes ``CASES`` with 4.29,
and stores the ids as a JSON fixture that the tests compare our tokenizer against.

It runs in a side environment, not the project's:

    python3.11 -m venv /tmp/venv429
    /tmp/venv429/bin/pip install transformers==4.29.2 sentencepiece==0.2.1 protobuf
    /tmp/venv429/bin/python tests/released/record_ids.py tests/released/llama429_ids.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import layout  # noqa: E402

SAMPLES = HERE.parents[2] / "shared" / "released-samples"  # ../shared beside the clone
META = (
    "You are an AI assistant whose name is SpeechGPT.\n- SpeechGPT is a intrinsic cross-modal "
    "conversational language model that is developed by Fudan University.  SpeechGPT can "
    "understand and communicate fluently with human through speech or text chosen by the user.\n"
    "- It can perceive cross-modal inputs and generate cross-modal outputs.\n"
)
CASES = [
    META + "[Human]: What is the capital of France? <eoh>. [SpeechGPT]: ",
    META + "[Human]: <sosp><12><345><999><0><eosp> <eoh>. [SpeechGPT]: ",
    "[Human]: Speak this aloud: The quick brown fox. This is input: <sosp><1><2><3><eosp> <eoh>. "
    "[SpeechGPT]: ",
    "What is the capital of France?; [ta] The capital of France is Paris.; [ua] "
    "<sosp><7><8><9><eosp><eoa>",
    "[tq] how are you; [ta] fine; [ua] <sosp><1><eosp><eoa><eos>",
    "Numbers like 3.14,  2023\nand 42 appear.",
    "<sosp> <12> <eosp>  <eoh>",
    "Hello<eoh>world[Human]again",
    "café naïve 東京 — ok",
    "  leading and trailing spaces  ",
    "",
    "<eoa>",
    "[ta]",
    "[ua] <sosp><5><eosp><eoa>",
]


def sample_cases() -> list[str]:
    """``prefix + plain_text`` of the instruction samples, and the stage-1 lines."""
    texts = []
    for name in ["cross_modal_instruction", "chain_of_modality_instruction"]:
        for line in (SAMPLES / f"{name}.sample.jsonl").read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(row, dict) and {"prefix", "plain_text"} <= row.keys():
                texts.append(row["prefix"] + row["plain_text"])
    with open(SAMPLES / "stage1_train.sample.txt", encoding="utf-8") as f:
        texts += [line.rstrip("\n") for line in f]
    return texts


def main(out: str) -> None:
    import sentencepiece
    import transformers

    assert transformers.__version__.startswith("4.29"), transformers.__version__
    with tempfile.TemporaryDirectory() as tmp:
        sha = layout.write_tokenizer(tmp)
        tokenizer = transformers.LlamaTokenizer.from_pretrained(tmp)
    cases = []
    for text in CASES + sample_cases():
        ids_no_bos = tokenizer(text, add_special_tokens=False)["input_ids"]
        cases.append(
            {
                "text": text,
                "ids": tokenizer(text)["input_ids"],
                "ids_no_bos": ids_no_bos,
                "decoded": tokenizer.decode(ids_no_bos),
            }
        )
    record = {
        "transformers": transformers.__version__,
        "sentencepiece": sentencepiece.__version__,
        "sp_model_sha256": sha,
        "vocab_size": len(tokenizer),
        "cases": cases,
    }
    Path(out).write_text(json.dumps(record, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv[1])

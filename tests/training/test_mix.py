"""Stage 2 of the tiny preset trains on cross_modal and text_chat together (§5.1)."""

from datasets import load_dataset

from training import config, store
from training.data import IGNORE
from training.model import load_tokenizer


def test_stage2_mixes_cross_modal_and_text_chat(stages, published):
    cfg = config.load("tiny/stage2")
    assert cfg.data_config == {"cross_modal": 1.0, "text_chat": 1.0}
    summary = stages["summaries"][2]
    rows = {c: len(load_dataset(published, c, split="train")) for c in cfg.data_config}
    assert {c: (m["rows"], m["samples"]) for c, m in summary["configs"].items()} == {
        c: (n, n) for c, n in rows.items()
    }
    assert summary["samples"] == sum(rows.values())
    samples = store.open_samples(store.TokenStore(summary["token_store"]), cfg.max_length)
    first = load_dataset(published, "text_chat", split="train")[0]
    ids, labels = samples[rows["cross_modal"]]  # the mix's sections: cross_modal, then text_chat
    tokenizer = load_tokenizer(stages[2])
    learned = tokenizer.decode(ids[labels != IGNORE])
    assert learned == "".join(f"{a}<eoa>" for a in first["answer"]) + "</s>"
    assert f"[Human]: {first['human'][0]}<eoh> [SpeechGPT]: " in tokenizer.decode(ids)

"""The token store and the micro-batch contract, on small in-memory datasets."""

import json
from collections import Counter

import numpy as np
import pytest
from datasets import Dataset

from speechinstruct.templates import render
from training import engine, sampler, store
from training.data import IGNORE, BadRow, chat_sample, prompt_head
from training.tokens import SpeechTokenizer

from .test_tokens import _tiny

K = 20
BUCKET = 50  # micro-batches per mega-batch, as the presets


@pytest.fixture(scope="module")
def st() -> SpeechTokenizer:
    from training.tokens import expand

    model, tok = _tiny()
    expand(model, tok, K)
    return SpeechTokenizer(tok)


def _units_rows(n: int) -> Dataset:
    rng = np.random.default_rng(0)
    units = [rng.integers(0, K, size=int(rng.integers(5, 40))).tolist() for _ in range(n)]
    return Dataset.from_dict({"units": units})


def _asr_rows(n: int) -> list[dict]:
    rows = []
    for i in range(n):
        prompt, response = render(
            "asr", description="Transcribe this.", speech=[i % K, 3, 4], text=f"the cat number {i}"
        )
        rows.append({"prompt": prompt, "response": response})
    return rows


def test_stage1_blocks_are_the_stream_of_unit_samples(st, tmp_path):
    rows = _units_rows(60)
    recipe = store.Recipe(1, "pretrain", 64)
    s = store.TokenStore(store.prepare(rows, st, recipe, tmp_path, progress=False))
    stream = np.concatenate([[st.sosp, *st.unit_ids(u), st.eosp, st.eos] for u in rows["units"]])
    assert s.tokens.dtype == np.uint16 and np.array_equal(s.tokens, stream)
    assert len(s) == 60 and s.offsets[-1] == len(stream)
    assert not (s.folder / "loss_mask.bin").exists()  # stage 1 learns every token
    blocks = store.open_samples(s, 64)
    assert len(blocks) == len(stream) // 64 and blocks.efficiency == 1.0
    assert blocks.dropped_tail_tokens == len(stream) % 64
    ids, labels = blocks[3]
    assert np.array_equal(ids, stream[192:256]) and np.array_equal(labels, ids)
    short = store.open_samples(s, 10**6)  # shorter than one block: one block, all of it
    assert len(short) == 1 and np.array_equal(short[0][0], stream)


def test_stage2_samples_mask_the_prompt_and_count_bad_rows(st, tmp_path):
    good = _asr_rows(300)
    bad = [
        {"prompt": "not a template", "response": "x<eoa>"},
        {"prompt": None, "response": "x<eoa>"},
    ]
    long_prompt, long_response = render(
        "asr", description="Transcribe.", speech=[1] * 600, text="long"
    )
    rows = Dataset.from_list(good + bad + [{"prompt": long_prompt, "response": long_response}])
    recipe = store.Recipe(2, "cross_modal", 512)
    s = store.TokenStore(store.prepare(rows, st, recipe, tmp_path, progress=False))
    assert s.meta["skipped"] == {"does_not_parse": 1, "missing_field": 1}
    assert s.meta["dropped_too_long"] == 1 and s.meta["samples"] == len(s) == 300
    samples = store.open_samples(s, 512)
    ids, labels = samples[7]
    mask = np.asarray(s.loss_mask[s.offsets[7] : s.offsets[8]], dtype=bool)
    n = int(mask.argmax())  # the prompt, then the response: one span of targets
    assert n > 0 and not mask[:n].any() and mask[n:].all()
    assert (labels[:n] == IGNORE).all() and np.array_equal(labels[n:], ids[n:])
    assert st.tok.decode(ids[n:]) == good[7]["response"] + "</s>"
    assert st.tok.decode(ids[:n]).endswith(good[7]["prompt"].split("This is input:")[-1])


def test_too_many_bad_rows_stop_the_build_with_the_counts(st, tmp_path):
    rows = Dataset.from_list(_asr_rows(50) + [{"prompt": "junk", "response": "junk"}] * 2)
    with pytest.raises(store.TooManyBadRows, match=r"2 of 52 rows.*does_not_parse': 2"):
        store.prepare(rows, st, store.Recipe(2, "cross_modal", 512), tmp_path, progress=False)
    assert not list((tmp_path / "token-stores").iterdir())  # nothing half-built left behind
    units = Dataset.from_dict({"units": [[1, 2], [K + 5], None, [3]]})  # out of range, null
    with pytest.raises(store.TooManyBadRows, match="does_not_encode': 1, 'missing_field': 1"):
        store.prepare(units, st, store.Recipe(1, "pretrain", 64), tmp_path, progress=False)


def test_store_is_found_again_by_its_key(st, tmp_path):
    rows = _units_rows(10)
    recipe = store.Recipe(1, "pretrain", 64)
    first = store.prepare(rows, st, recipe, tmp_path, progress=False)
    stamp = (first / store.META).stat().st_mtime_ns
    assert store.prepare(rows, st, recipe, tmp_path, progress=False) == first
    assert (first / store.META).stat().st_mtime_ns == stamp  # not rebuilt
    assert store.locate(rows, st, store.Recipe(1, "pretrain", 128), tmp_path) != first
    assert store.locate(_units_rows(11), st, recipe, tmp_path) != first
    assert json.loads((first / store.META).read_text())["tokenizer"] == store.tokenizer_hash(st.tok)


def test_epoch_order_covers_every_sample_once_in_length_buckets():
    lengths = np.random.default_rng(1).integers(1, 500, size=1003)
    order, starts = sampler.epoch_order(lengths, 4, seed=3, epoch=0, bucket=BUCKET)
    assert sorted(order.tolist()) == list(range(1003))
    assert sorted(starts.tolist()) == list(range(0, 1003, 4))
    mega = 4 * BUCKET
    for start in range(0, 1003, mega):  # sorted by length within each mega-batch
        assert np.all(np.diff(lengths[order[start : start + mega]]) >= 0)
    again = sampler.epoch_order(lengths, 4, seed=3, epoch=0, bucket=BUCKET)
    assert all(np.array_equal(a, b) for a, b in zip((order, starts), again, strict=True))
    other = sampler.epoch_order(lengths, 4, seed=3, epoch=1, bucket=BUCKET)
    assert not np.array_equal(order, other[0])


def test_ranks_split_each_step_like_one_rank_with_more_accumulation():
    draw = sampler.MicroBatches(np.ones(40, dtype=np.int64), 2, seed=0, bucket=BUCKET)
    for step in range(7):  # crosses an epoch boundary (20 micro-batches an epoch)
        one = sampler.rank_micro_batches(step, 1, 4, 0)
        two = [sampler.rank_micro_batches(step, 2, 2, r) for r in (0, 1)]
        four = [sampler.rank_micro_batches(step, 4, 1, r) for r in range(4)]
        assert sorted(m for ms in two for m in ms) == sorted(m for ms in four for m in ms) == one
        assert all(m % 2 == r for r, ms in enumerate(two) for m in ms)
    seen = Counter(i for m in range(20) for i in draw(m)[1].tolist())
    assert seen == Counter(range(40))  # one epoch: every sample once
    assert draw(20)[0] == 1 and draw(19)[0] == 0


def test_a_failed_build_stops_the_waiting_ranks(tmp_path):
    folder = tmp_path / "token-stores" / "stage2-x-key"
    store.mark_failed(folder, store.TooManyBadRows("3 of 10 rows could not be used"))
    with pytest.raises(RuntimeError, match=r"rank 0 could not build .*3 of 10 rows"):
        store.wait_for(folder, poll_s=0.01)


def test_rotation_keeps_the_newest_up_to_the_step_just_saved(tmp_path):
    for step in (2, 4, 6, 1000):  # step1000: a stale checkpoint of an earlier, longer run
        (tmp_path / f"step{step}").mkdir()
    assert engine.rotate(tmp_path, keep=2, step=6) == ["step2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step1000", "step4", "step6"]


def _chats(n: int) -> Dataset:
    return Dataset.from_list(
        [
            {
                "human": [f"hello number {i}", "and then?"],
                "answer": [f"hi {i}, how can I help?", "then <eoh> we stop."],
            }
            for i in range(n)
        ]
    )


def test_text_chat_learns_every_answer_and_no_question(st):
    """Each turn in the template's markup; the loss on each answer with its <eoa> and on
    </s>; a typed control string stays text."""
    row = _chats(1)[0]
    head = prompt_head(st)
    ids, mask = chat_sample(row, st, head)
    assert len(ids) == len(mask) and ids[: len(head)] == head and not mask[: len(head)].any()
    learned = st.tok.decode([i for i, m in zip(ids, mask, strict=True) if m])
    assert learned == "hi 0, how can I help?<eoa>then <eoh> we stop.<eoa></s>"
    asked = st.tok.decode(
        [i for i, m in zip(ids[len(head) :], mask[len(head) :], strict=True) if not m]
    )
    assert (
        asked == "[Human]: hello number 0<eoh> [SpeechGPT]: [Human]: and then?<eoh> [SpeechGPT]: "
    )
    eoh = st.tok.convert_tokens_to_ids("<eoh>")
    assert ids.count(eoh) == 2  # the answer's typed "<eoh>" is text, not the control token
    with pytest.raises(BadRow, match="1 human turns, 2 answers"):
        chat_sample({"human": ["a"], "answer": ["b", "c"]}, st, head)


def test_a_mix_uses_each_config_by_its_weight(st, tmp_path):
    """{cross_modal: 1.0, text_chat: 0.5}: every ASR row once and a seeded half of the chats,
    in one store; another seed draws another half; the counts are in meta.json."""
    rows = {"cross_modal": Dataset.from_list(_asr_rows(40)), "text_chat": _chats(30)}
    mix = (("cross_modal", 1.0), ("text_chat", 0.5))
    s = store.TokenStore(
        store.prepare(rows, st, store.Recipe(2, mix, 512), tmp_path, progress=False)
    )
    assert {c: (m["rows"], m["samples"]) for c, m in s.meta["configs"].items()} == {
        "cross_modal": (40, 40),
        "text_chat": (15, 15),
    }
    assert sum(m["tokens"] for m in s.meta["configs"].values()) == s.meta["tokens"] == len(s.tokens)
    samples = store.open_samples(s, 512)
    chats = [st.tok.decode(samples[i][0]) for i in range(40, 55)]
    picked = sorted(int(c.split("hello number ")[1].split("<eoh>")[0]) for c in chats)
    assert len(set(picked)) == 15 and all(0 <= i < 30 for i in picked)
    again = store.TokenStore(
        store.prepare(rows, st, store.Recipe(2, mix, 512, seed=1), tmp_path, progress=False)
    )
    other = sorted(
        int(
            st.tok.decode(store.open_samples(again, 512)[i][0])
            .split("hello number ")[1]
            .split("<eoh>")[0]
        )
        for i in range(40, 55)
    )
    assert other != picked and again.folder != s.folder
    doubled = store.Recipe(2, (("cross_modal", 2.0),), 512)
    twice = store.TokenStore(store.prepare(rows, st, doubled, tmp_path, progress=False))
    assert twice.meta["configs"]["cross_modal"]["samples"] == 80 == len(twice)
    assert np.array_equal(twice.tokens[: twice.offsets[40]], twice.tokens[twice.offsets[40] :])

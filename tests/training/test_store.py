"""The token store and the micro-batch contract, on small in-memory datasets."""

import json
from collections import Counter

import numpy as np
import pytest
from datasets import Dataset

from speechinstruct.templates import render
from training import engine, sampler, store
from training.data import IGNORE
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
    assert len(s) == 60 and s.offsets[-1] == len(stream) and not s.prompt_lengths.any()
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
    n = int(s.prompt_lengths[7])
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

"""The published SpeechInstruct rows against where they come from: the ``tokenize`` shards,
the shipped task descriptions and ``--asr-probability``."""

import math
from importlib import resources
from pathlib import Path

import pyarrow.parquet as pq

from speechinstruct import descriptions
from speechinstruct.instructions import cross_modal, split_of
from speechinstruct.templates import CROSS_MODAL, parse
from tests.conftest import CORPORA

VALIDATION_SHARE = 0.05  # build's default, which the session's build uses


def _units(made, corpus: str) -> dict[str, dict]:
    """The unit rows ``tokenize`` wrote for one sample corpus, by id."""
    folder = Path(made["units"][list(CORPORA).index(corpus)])
    assert folder.name == corpus
    files = sorted((folder / "units").glob("*.parquet"))
    return {r["id"]: r for f in files for r in pq.read_table(f).to_pylist()}


def _config(published: str, config: str) -> dict[str, list[dict]]:
    """A published config's rows by split, as the Parquet files hold them."""
    rows: dict[str, list[dict]] = {}
    for f in sorted((Path(published) / "data" / config).glob("*.parquet")):
        rows.setdefault(f.name.split("-")[0], []).extend(pq.read_table(f).to_pylist())
    return rows


def _within(count: int, n: int, p: float, sigmas: float = 4.0) -> bool:
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_pretrain_is_the_librilight_units(made, published):
    librilight = _units(made, "librilight")
    pretrain = _config(published, "pretrain")
    rows = [r for split in pretrain.values() for r in split]
    assert librilight and len(rows) == len(librilight)
    assert {r["id"]: r["units"] for r in rows} == {i: r["units"] for i, r in librilight.items()}
    for split, split_rows in pretrain.items():
        assert all(split_of(r["id"], VALIDATION_SHARE) == split for r in split_rows)


def test_cross_modal_units_and_text_are_their_source_rows(made, published):
    source = {i: r for corpus in CORPORA for i, r in _units(made, corpus).items()}
    rows = [r for split in _config(published, "cross_modal").values() for r in split]
    assert sorted(r["id"] for r in rows) == sorted(i for i, r in source.items() if r["text"])
    for row in rows:
        unit_row = source[row["id"]]
        assert row["units"] == unit_row["units"] and row["text"] == unit_row["text"]
        name, fields = parse(row["prompt"], row["response"], CROSS_MODAL)
        assert name == row["task"] and fields["description"] == row["description"]
        assert fields["speech"] == unit_row["units"] and fields["text"] == unit_row["text"]


def test_descriptions_come_from_the_shipped_sets(published):
    data = resources.files("speechinstruct").joinpath("data")
    shipped = {
        task: [
            line.strip()
            for line in data.joinpath(f"{task}_descriptions.txt").read_text().splitlines()
            if line.strip()
        ]
        for task in CROSS_MODAL
    }
    assert {task: list(descriptions.load(task)) for task in CROSS_MODAL} == shipped
    assert all(len(set(lines)) == 100 for lines in shipped.values())
    assert not set(shipped["asr"]) & set(shipped["tts"])
    rows = [r for split in _config(published, "cross_modal").values() for r in split]
    for task in CROSS_MODAL:
        used = [r["description"] for r in rows if r["task"] == task]
        assert set(used) <= set(shipped[task])
        assert len(set(used)) > len(used) / 3  # drawn from the set, not one line again and again


def test_asr_share_is_the_asr_probability(made, published):
    """Each row's task is ``cross_modal``'s draw for its id (seed 0, p 0.5, build's defaults);
    over many ids the ASR share is p within four binomial sigmas, for p far from 1/2 too."""
    source = {i: r for corpus in CORPORA for i, r in _units(made, corpus).items()}
    rows = [r for split in _config(published, "cross_modal").values() for r in split]
    for row in rows:
        assert row["task"] == cross_modal(source[row["id"]], 0, 0.5, VALIDATION_SHARE)["task"]
    assert _within(sum(r["task"] == "asr" for r in rows), len(rows), 0.5)
    n = 4000
    ids = [{"id": f"utt{i:05d}", "units": [1, 2], "text": "a b"} for i in range(n)]
    for p in (0.1, 0.7):
        asr = sum(cross_modal(r, 0, p, VALIDATION_SHARE)["task"] == "asr" for r in ids)
        assert _within(asr, n, p), (p, asr / n)
    assert cross_modal(ids[0], 0, 0.0, VALIDATION_SHARE)["task"] == "tts"
    assert cross_modal(ids[0], 0, 1.0, VALIDATION_SHARE)["task"] == "asr"

"""``training/data.py``: what a local dataset folder holds is what is read."""

import shutil

import pyarrow.parquet as pq
import pytest

from training.data import load_split


def test_load_split_reads_the_rows_of_the_folder_it_is_given(published, tmp_path):
    """Two copies of a dataset under one folder name (not ``published``'s: a wrong cache
    entry would be read by every later test), each with its own eval rows."""
    read = []
    for copy in ("first", "second"):
        folder = tmp_path / copy / "same_name"
        shutil.copytree(published, folder)
        (path,) = (folder / "data" / "eval").glob("test-*.parquet")
        table = pq.read_table(path)
        rows = [{**row, "text_instruction": copy} for row in table.to_pylist()]
        pq.write_table(table.from_pylist(rows, schema=table.schema), path)
        read.append(set(load_split(str(folder), "eval", "test")["text_instruction"]))
    assert read == [{"first"}, {"second"}]


def test_a_split_the_card_does_not_name_is_a_clear_error(published):
    with pytest.raises(
        ValueError, match=r"config 'eval' has no 'train' split \(it has \['test'\]\)"
    ):
        load_split(published, "eval", "train")

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Value, load_dataset

from schemas import REASONS, SCHEMA_VERSION, TABLES, SchemaError, features, schema, validate
from schemas.tables import to_table


def unit_row(i: int, units: list[int], k: int = 100) -> dict:
    return {
        "id": f"utt{i}",
        "corpus": "librispeech",
        "split": "dev-clean",
        "speaker": "84",
        "text": None if i % 2 else "HELLO",
        "units": units,
        "durations": [2] * len(units),
        "num_frames": 2 * len(units),
        "duration_s": 0.04 * len(units),
        "source": {"path": f"/c/{i}.flac", "start_s": None, "end_s": None},
        "extractor": {"name": "mfcc", "layer": None, "k": k, "centroids_hash": "ab12"},
        "content_hash": f"h{i}",
    }


def test_every_table_has_version_and_matching_features():
    assert set(TABLES) == {
        "units",
        "rejects",
        "duplicates",
        "pretrain",
        "cross_modal",
        "chain_of_modality",
        "text_chat",
        "eval",
    }
    for name in TABLES:
        s = schema(name)
        assert s.metadata[b"schema_version"] == SCHEMA_VERSION.encode()
        assert list(features(name)) == s.names


def test_required_columns():
    assert set(schema("units").names) >= {
        "id",
        "corpus",
        "split",
        "speaker",
        "text",
        "units",
        "durations",
        "duration_s",
        "source",
        "extractor",
        "content_hash",
    }
    assert set(schema("rejects").names) >= {"id", "corpus", "source", "stage", "reason", "detail"}
    assert set(schema("duplicates").names) >= {"id", "duplicate_of"}
    assert schema("units").field("units").type == pa.list_(pa.int16())
    assert features("units")["units"].feature == Value("int16")


def test_valid_table_passes_and_round_trips_through_datasets(tmp_path):
    table = to_table("units", [unit_row(0, [1, 2, 99]), unit_row(1, [0])])
    assert validate(table) is table
    pq.write_table(table, tmp_path / "units.parquet")
    ds = load_dataset("parquet", data_files=str(tmp_path / "units.parquet"), split="train")
    assert ds.features["units"].feature == Value("int16")
    assert ds[0]["units"] == [1, 2, 99] and ds[1]["text"] is None


@pytest.mark.parametrize(
    ("mutate", "column", "row"),
    [
        (lambda rows: rows[2].update(units=[5, 100], durations=[1, 1], num_frames=2), "units", 2),
        (lambda rows: rows[1].update(units=[-1], durations=[1], num_frames=1), "units", 1),
        (lambda rows: rows[2].update(durations=[2]), "durations", 2),
        (lambda rows: rows[0].update(num_frames=7), "num_frames", 0),
        (lambda rows: rows[1].update(id="utt0"), "id", 1),
    ],
)
def test_validate_names_column_and_row(mutate, column, row):
    rows = [unit_row(i, [1, 2]) for i in range(3)]
    mutate(rows)
    with pytest.raises(SchemaError) as e:
        validate(to_table("units", rows))
    assert (e.value.column, e.value.row) == (column, row)
    assert f"column {column!r}, row {row}" in str(e.value)


def test_validate_reports_nulls_types_and_missing_columns():
    table = to_table("units", [unit_row(i, [1]) for i in range(3)])
    speakers = pa.array(["a", None, "c"], pa.string())
    with pytest.raises(SchemaError, match="column 'speaker', row 1: null"):
        validate(table.set_column(3, "speaker", speakers), "units")
    with pytest.raises(SchemaError, match="column 'units': type list<item: int32>"):
        units = pa.array([[1], [1], [1]], pa.list_(pa.int32()))
        validate(table.set_column(5, "units", units), "units")
    with pytest.raises(SchemaError, match="column 'content_hash': missing column"):
        validate(table.drop_columns(["content_hash"]), "units")


def test_enums_and_reason_codes():
    row = {
        "id": "a",
        "task": "asr",
        "description": "d",
        "units": [1],
        "text": "t",
        "prompt": "p",
        "response": "r",
    }
    validate(to_table("cross_modal", [row]))
    with pytest.raises(SchemaError, match="column 'task', row 1: 'sing'"):
        validate(to_table("cross_modal", [row, {**row, "id": "b", "task": "sing"}]))
    reject = {
        "id": "x",
        "corpus": "c",
        "source": None,
        "stage": "read",
        "reason": "silent",
        "detail": "",
    }
    assert "silent" in REASONS
    validate(to_table("rejects", [reject]))
    with pytest.raises(SchemaError, match="column 'reason', row 0: unknown reason code 'oops'"):
        validate(to_table("rejects", [{**reject, "reason": "oops"}]))


def test_to_table_refuses_rows_that_do_not_fit():
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError)):
        to_table("pretrain", [{"id": "a", "units": ["x"]}])


def test_eval_rows_name_their_source():
    row = {
        "id": "eval_x",
        "role": "",
        "text_instruction": "Say hello.",
        "text_response": "Hello.",
        "speech_instruction": [1, 2],
        "speech_response": [3],
        "source": "eval-extra",
    }
    validate(to_table("eval", [row, {**row, "id": "eval_y", "source": "speechinstruct"}]))
    with pytest.raises(SchemaError, match="column 'source', row 0: 'alpaca'"):
        validate(to_table("eval", [{**row, "source": "alpaca"}]))
    with pytest.raises(SchemaError, match="column 'source', row 0: null"):
        validate(to_table("eval", [{k: v for k, v in row.items() if k != "source"}]))

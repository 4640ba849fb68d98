"""The whole builder chain with every input and output on object storage.

``learn-kmeans → tokenize → build → publish`` on ``s3://`` (moto's S3 server) and on ``gs://``
(gcp-storage-emulator), both real protocol servers on 127.0.0.1 standing in for the clouds,
over real human speech (``shared/real-speech``, LibriSpeech layout) plus a LibriSpeech-layout
corpus this test damages. Every record must land where it belongs. Then ``speechgpt
tokenize`` from the command line with only ``AWS_*`` in its environment and Beam's ``--s3_*``
flags.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from datasets import load_dataset

from pipelines import build, learn_kmeans, publish, tokenize
from speechinstruct import storage
from tests.object_store import download_tree, filesystem_options, gcs_server, s3_server, upload_tree

REAL = Path(__file__).resolve().parents[3] / "shared" / "real-speech"  # shared/ beside the repo
EXPECTED = json.loads((REAL / "expected.json").read_text())
CHAPTER = "9901/99011"
DAMAGED_STATS = {
    "read": 8,
    "kept": 3,
    "rejected": {"bad_metadata": 1, "decode_error": 1, "empty_text": 1, "missing_audio": 1},
    "duplicates": {"audio": 1},
}
CHATS = [
    {
        "plain_text": "[Human]: What is the capital of France? <eoh> [MOSS]: Paris is the capital "
        "of France. <eoa>"
    },
    {"plain_text": "[Human]: Name a primary colour. <eoh> [MOSS]: Red is a primary colour. <eoa>"},
    {
        "plain_text": "[Human]: How many days are in a week? <eoh> [MOSS]: A week has seven days. "
        "<eoa>"
    },
]


def damaged_corpus(root: Path) -> Path:
    """A real chapter renamed to speaker 9990, chapter 99901, with damage: a transcript line
    without its FLAC, a truncated FLAC, an empty transcript, a FLAC without a line, and a
    copy of another utterance's audio."""
    chapter = root / "LibriSpeech" / "dev-damaged" / "9990" / "99901"
    chapter.mkdir(parents=True)
    real = REAL / "LibriSpeech" / "test-real" / CHAPTER
    for n in range(6):
        shutil.copy(real / f"9901-99011-000{n}.flac", chapter / f"9990-99901-000{n}.flac")
    lines = (real / "9901-99011.trans.txt").read_text().replace("9901-99011", "9990-99901")
    lines = lines.splitlines()
    lines[3] = "9990-99901-0003"  # empty transcript
    lines.append("9990-99901-0010 THE SAME AUDIO AS ANOTHER")
    (chapter / "9990-99901.trans.txt").write_text("\n".join(lines) + "\n")
    (chapter / "9990-99901-0005.flac").unlink()
    flac = (chapter / "9990-99901-0004.flac").read_bytes()
    (chapter / "9990-99901-0004.flac").write_bytes(flac[: len(flac) // 3])
    shutil.copy(chapter / "9990-99901-0001.flac", chapter / "9990-99901-0010.flac")
    shutil.copy(chapter / "9990-99901-0002.flac", chapter / "9990-99901-0099.flac")
    return root / "LibriSpeech"


@pytest.fixture(params=["s3", "gs"])
def bucket(request):
    """A bucket on a local S3 or GCS server, with FileSystems set up for it; its Beam args."""
    server_of = s3_server if request.param == "s3" else gcs_server
    with server_of() as server, filesystem_options(server.beam_args):
        yield server.make_bucket("speechgpt-chain"), server.beam_args


def _rows(folder: Path) -> list[dict]:
    return [r for f in sorted(folder.glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_chain_on_object_storage(bucket, tmp_path):
    uri, beam_args = bucket
    upload_tree(REAL / "LibriSpeech", f"{uri}/real/LibriSpeech")
    upload_tree(damaged_corpus(tmp_path / "damaged"), f"{uri}/damaged/LibriSpeech")
    chats = "\n".join([*map(json.dumps, CHATS), "{not json"]) + "\n"
    storage.write_text(f"{uri}/chats.jsonl", chats)

    km = f"{uri}/models/km.npy"
    info = learn_kmeans.run(
        [
            "--corpus",
            "librispeech",
            "--input",
            f"{uri}/real/LibriSpeech",
            "--k",
            "16",
            "--output",
            km,
            "--max-utterances",
            "20",
            *beam_args,
        ]
    )
    assert info["utterances"] == 20 and storage.exists(f"{uri}/models/km.json")

    real = tokenize.run(
        [
            "--corpus",
            "librispeech",
            "--input",
            f"{uri}/real/LibriSpeech",
            "--kmeans",
            km,
            "--output",
            f"{uri}/units/real",
            *beam_args,
        ]
    )
    assert (real["read"], real["kept"], real["rejected"], real["duplicates"]) == (
        len(EXPECTED),
        len(EXPECTED),
        {},
        {},
    )
    damaged = tokenize.run(
        [
            "--corpus",
            "librispeech",
            "--input",
            f"{uri}/damaged/LibriSpeech",
            "--split",
            "dev-damaged",
            "--kmeans",
            km,
            "--output",
            f"{uri}/units/damaged",
            *beam_args,
        ]
    )
    assert {k: damaged[k] for k in DAMAGED_STATS} == DAMAGED_STATS

    local = tmp_path / "local"
    download_tree(f"{uri}/units", local / "units")
    units = _rows(local / "units" / "real" / "units")
    assert {r["id"]: r["text"] for r in units} == {k: v["text"] for k, v in EXPECTED.items()}
    assert all(r["source"]["path"].startswith(f"{uri}/real/LibriSpeech/test-real/") for r in units)
    rejects = {r["id"]: r["reason"] for r in _rows(local / "units" / "damaged" / "rejects")}
    assert rejects == {
        "9990-99901-0003": "empty_text",
        "9990-99901-0004": "decode_error",
        "9990-99901-0005": "missing_audio",
        "9990-99901-0099": "bad_metadata",
    }
    (dup,) = _rows(local / "units" / "damaged" / "duplicates")
    assert (dup["id"], dup["duplicate_of"]) == ("9990-99901-0010", "9990-99901-0001")

    built = build.run(
        [
            "--units",
            f"{uri}/units/real",
            f"{uri}/units/damaged",
            "--chats",
            f"{uri}/chats.jsonl",
            "--speech-backend",
            "tts",
            "--kmeans",
            km,
            "--output",
            f"{uri}/build",
            *beam_args,
        ]
    )
    assert built["chats_read"] == len(CHATS) + 1
    assert sum(built["counts"]["rejects"].values()) == 1
    assert sum(built["counts"]["chain_of_modality"].values()) == 4 * len(CHATS)
    assert sum(built["counts"]["cross_modal"].values()) == len(EXPECTED) + 3

    publish.run(["--input", f"{uri}/build", "--output", f"{uri}/dataset", *beam_args])
    assert storage.exists(f"{uri}/dataset/_SUCCESS.json")
    assert not storage.match(f"{uri}/dataset.partial/**")
    download_tree(f"{uri}/dataset", local / "dataset")
    cross = load_dataset(str(local / "dataset"), "cross_modal")
    ids = sorted(i for split in cross.values() for i in split["id"])
    assert ids == sorted([*EXPECTED, "9990-99901-0000", "9990-99901-0001", "9990-99901-0002"])
    assert len(load_dataset(str(local / "dataset"), "eval", split="test")) == 60


def test_tokenize_command_line_on_s3(tmp_path):
    """``speechgpt tokenize`` in a fresh process: only ``AWS_*`` (and PATH) in its environment,
    the endpoint from Beam's ``--s3_*`` flags."""
    with s3_server() as server, filesystem_options(server.beam_args):
        uri = server.make_bucket("speechgpt-cli")
        upload_tree(damaged_corpus(tmp_path), f"{uri}/LibriSpeech")
        km = str(tmp_path / "km.npy")
        learn_kmeans.run(
            [
                "--corpus",
                "librispeech",
                "--input",
                str(tmp_path / "LibriSpeech"),
                "--k",
                "8",
                "--output",
                km,
            ]
        )
        storage.copy_file(km, f"{uri}/km.npy")
        env = {k: v for k, v in os.environ.items() if k.startswith("AWS_") or k == "PATH"}
        env.pop("AWS_ENDPOINT_URL")
        speechgpt = Path(sys.executable).with_name("speechgpt")
        subprocess.run(
            [
                str(speechgpt),
                "tokenize",
                "--corpus",
                "librispeech",
                "--input",
                f"{uri}/LibriSpeech",
                "--kmeans",
                f"{uri}/km.npy",
                "--output",
                f"{uri}/out",
                *server.beam_args,
            ],
            env=env,
            check=True,
            timeout=300,
        )
        marker = storage.read_json(f"{uri}/out/_SUCCESS.json")
        assert {k: marker["stats"][k] for k in DAMAGED_STATS} == DAMAGED_STATS
        assert storage.read_json(f"{uri}/out/stats.json") == marker["stats"]

"""Beam's FileSystems against the offline S3 (moto) and GCS (gcp-storage-emulator) servers."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from apache_beam.io.filesystems import FileSystems

from tests.object_store import (
    download_tree,
    filesystem_options,
    gcs_server,
    patched_env,
    s3_server,
    upload_tree,
)

BUCKET = "speechgpt-test"


@pytest.fixture(scope="module")
def s3_module():
    with s3_server() as server:
        yield server


@pytest.fixture(scope="module")
def gcs_module():
    with gcs_server() as server:
        yield server


@pytest.fixture
def s3(s3_module):
    """The module's S3 server, emptied, with bucket BUCKET and FileSystems set up for it."""
    s3_module.reset()
    s3_module.make_bucket(BUCKET)
    with filesystem_options(s3_module.beam_args):
        yield s3_module


@pytest.fixture
def gcs(gcs_module):
    """The module's GCS server, emptied, with bucket BUCKET and FileSystems set up for it."""
    gcs_module.reset()
    gcs_module.make_bucket(BUCKET)
    with filesystem_options(gcs_module.beam_args):
        yield gcs_module


@pytest.fixture(params=["s3", "gs"])
def root(request) -> str:
    """``s3://BUCKET`` or ``gs://BUCKET``, with its server running and FileSystems set up."""
    request.getfixturevalue({"s3": "s3", "gs": "gcs"}[request.param])
    return f"{request.param}://{BUCKET}"


def write(uri: str, data: bytes) -> None:
    with FileSystems.create(uri) as f:
        f.write(data)


def read(uri: str) -> bytes:
    with FileSystems.open(uri) as f:
        return f.read()


def paths(pattern: str) -> list[str]:
    (result,) = FileSystems.match([pattern])
    return sorted(m.path for m in result.metadata_list)


def test_write_match_open(root):
    write(f"{root}/data/top.txt", b"top")
    write(f"{root}/data/sub/one.txt", b"one")
    write(f"{root}/data/sub/deeper/two.json", b"{}")

    assert read(f"{root}/data/sub/one.txt") == b"one"
    assert paths(f"{root}/data/*.txt") == [f"{root}/data/top.txt"]
    assert paths(f"{root}/data/**.txt") == [f"{root}/data/sub/one.txt", f"{root}/data/top.txt"]
    assert paths(f"{root}/data/**") == [
        f"{root}/data/sub/deeper/two.json",
        f"{root}/data/sub/one.txt",
        f"{root}/data/top.txt",
    ]
    (result,) = FileSystems.match([f"{root}/data/sub/one.txt"])
    assert [m.size_in_bytes for m in result.metadata_list] == [3]
    assert FileSystems.exists(f"{root}/data/top.txt")


def test_match_missing(root):
    assert paths(f"{root}/missing/*") == []
    assert paths(f"{root}/missing/**") == []
    assert not FileSystems.exists(f"{root}/missing/file.txt")
    # A plain path that is not there matches nothing (no error), as for a glob.
    assert paths(f"{root}/missing/file.txt") == []


def test_rename_delete(root):
    write(f"{root}/a.txt", b"a")
    write(f"{root}/b.txt", b"b")
    FileSystems.rename([f"{root}/a.txt"], [f"{root}/moved/a.txt"])
    assert paths(f"{root}/**") == [f"{root}/b.txt", f"{root}/moved/a.txt"]
    assert read(f"{root}/moved/a.txt") == b"a"
    FileSystems.delete([f"{root}/b.txt", f"{root}/moved/a.txt"])
    assert paths(f"{root}/**") == []


def test_soundfile_reads_object(root, tmp_path):
    rate = 16000
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(rate // 4) / rate)).astype(np.float32)
    sf.write(tmp_path / "tone.wav", tone, rate, subtype="PCM_16")
    write(f"{root}/audio/tone.wav", (tmp_path / "tone.wav").read_bytes())
    with FileSystems.open(f"{root}/audio/tone.wav") as f:
        audio, got_rate = sf.read(f, dtype="float32")
    assert got_rate == rate
    np.testing.assert_allclose(audio, tone, atol=1e-4)


def test_upload_download_tree(root, tmp_path):
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    (src / "top.bin").write_bytes(bytes(range(256)) * 10)
    (src / "a" / "b" / "leaf.txt.gz").write_bytes(b"not really gzip")  # copied as raw bytes
    uris = upload_tree(src, f"{root}/tree/")
    assert uris == [f"{root}/tree/a/b/leaf.txt.gz", f"{root}/tree/top.bin"]

    dst = tmp_path / "dst"
    got = download_tree(f"{root}/tree", dst)
    assert sorted(p.relative_to(dst).as_posix() for p in got) == ["a/b/leaf.txt.gz", "top.bin"]
    assert (dst / "top.bin").read_bytes() == (src / "top.bin").read_bytes()
    assert (dst / "a" / "b" / "leaf.txt.gz").read_bytes() == b"not really gzip"


def test_s3_environment_alone_is_enough(s3):
    """With empty options, Beam's boto3 client takes endpoint, keys and region from AWS_*."""
    with filesystem_options():
        write(f"s3://{BUCKET}/env.txt", b"env")
        assert read(f"s3://{BUCKET}/env.txt") == b"env"


def test_s3_options_alone_are_enough(s3):
    aws_env = [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
        "AWS_ENDPOINT_URL",
    ]
    with patched_env(dict.fromkeys(aws_env)):
        write(f"s3://{BUCKET}/opts.txt", b"opts")
        assert read(f"s3://{BUCKET}/opts.txt") == b"opts"


def test_s3_options_win_over_environment(s3):
    from apache_beam.io.aws.clients.s3.boto3_client import Client
    from apache_beam.options.pipeline_options import PipelineOptions

    with patched_env({"AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "eu-west-1"}):
        env_only = Client(PipelineOptions([])).client
        assert (env_only.meta.endpoint_url, env_only.meta.region_name) == (
            "http://127.0.0.1:9",
            "eu-west-1",
        )
        both = Client(PipelineOptions(s3.beam_args)).client
        assert (both.meta.endpoint_url, both.meta.region_name) == (s3.endpoint, "us-east-1")


def test_text_round_trip_in_pipeline(s3):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.testing.util import assert_that, equal_to

    lines = [f"line {i}" for i in range(50)]
    options = PipelineOptions(["--runner=FnApiRunner", *s3.beam_args])
    with filesystem_options():  # the Pipeline replaces FileSystems' options; put them back
        with beam.Pipeline(options=options) as p:
            _ = (
                p
                | beam.Create(lines)
                | beam.io.WriteToText(f"s3://{BUCKET}/text/part", file_name_suffix=".txt")
            )
        assert paths(f"s3://{BUCKET}/text/part*.txt")
        with beam.Pipeline(options=options) as p:
            got = p | beam.io.ReadFromText(f"s3://{BUCKET}/text/part*.txt")
            assert_that(got, equal_to(lines))

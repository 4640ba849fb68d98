"""The builder on a real multi-process runner: Beam's ``PortableRunner`` against its local job
service with an EXTERNAL pool of two SDK worker processes, the way Flink task managers run
Python (``tests/portable.py``). Outputs must be byte-identical to the in-process run."""

import hashlib
import json

from pipelines import build, tokenize
from tests.conftest import CORPORA
from tests.portable import portable_runner


def _digest(out) -> dict:
    return {
        str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*.parquet"))
    }


def _tokenize(sample, made, corpus, out, *beam_args) -> dict:
    folder, split = CORPORA[corpus]
    argv = [
        "--corpus",
        corpus,
        "--input",
        str(sample["root"] / folder),
        "--kmeans",
        made["km"],
        "--output",
        str(out),
        "--num-shards",
        "2",
        *beam_args,
    ]
    return tokenize.run(argv + (["--split", split] if split else []))


def _build(made, units, out, *beam_args) -> dict:
    return build.run(
        [
            "--units",
            *map(str, units),
            "--chats",
            str(made["work"] / "chats.json"),
            "--speech-backend",
            "tts",
            "--max-chats",
            "6",
            "--kmeans",
            made["km"],
            "--output",
            str(out),
            *beam_args,
        ]
    )


def test_tokenize_and_build_on_an_external_worker_pool(sample, made, tmp_path):
    corpora = ("librispeech", "gigaspeech")
    runs = {}
    with portable_runner(workers=2) as beam_args:
        runs["pool"] = [
            _tokenize(sample, made, c, tmp_path / "pool" / c, *beam_args) for c in corpora
        ]
        runs["pool"].append(
            _build(
                made,
                [tmp_path / "pool" / c for c in corpora],
                tmp_path / "pool" / "build",
                *beam_args,
            )
        )
    runs["local"] = [_tokenize(sample, made, c, tmp_path / "local" / c) for c in corpora]
    runs["local"].append(
        _build(made, [tmp_path / "local" / c for c in corpora], tmp_path / "local" / "build")
    )

    pool, local = _digest(tmp_path / "pool"), _digest(tmp_path / "local")
    assert pool == local and any(k.startswith("build/chain_of_modality/") for k in pool)
    for p, d in zip(runs["pool"][:2], runs["local"][:2], strict=True):
        assert {**p, "wall_seconds": 0} == {**d, "wall_seconds": 0} and p["kept"] > 0
    assert runs["pool"][2]["counts"] == runs["local"][2]["counts"]
    marker = json.loads((tmp_path / "pool" / "build" / "_SUCCESS.json").read_text())
    assert marker["tables"]["eval"]["rows"] == {"test": 60}

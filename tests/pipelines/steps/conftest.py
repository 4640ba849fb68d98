"""What the step tests share: real speech, centroids from it, a tiny T2U model, counters."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from apache_beam.metrics.metric import MetricsFilter

from speechinstruct.extractors import ExtractorSpec, build_features
from speechinstruct.t2u.model import T2U, build_model, build_tokenizer, load_preset

SHARED = Path(__file__).resolve().parents[4] / "shared"  # shared/ beside the repo
REAL = SHARED / "real-speech" / "LibriSpeech" / "test-real"
TEXTS = {
    k: v["text"] for k, v in json.loads((REAL.parents[1] / "expected.json").read_text()).items()
}
SR = 16_000
K = 16


def flac(id_: str) -> Path:
    """The real FLAC of an utterance id of ``shared/real-speech``."""
    speaker, chapter, _ = id_.split("-")
    return REAL / speaker / chapter / f"{id_}.flac"


def wave(id_: str) -> np.ndarray:
    return sf.read(flac(id_), dtype="float32")[0]


def run(p):
    """Run a test pipeline to the end; its result, for the metrics."""
    result = p.run()
    result.wait_until_finish()
    return result


def counters(result, namespace: str) -> dict[str, int]:
    """The committed counters of a namespace, summed over steps (the direct runner fills
    committed and attempted alike)."""
    out: dict[str, int] = {}
    for c in result.metrics().query(MetricsFilter().with_namespace(namespace))["counters"]:
        out[c.key.metric.name] = out.get(c.key.metric.name, 0) + c.committed
    return out


def distribution(result, namespace: str, name: str):
    query = MetricsFilter().with_namespace(namespace).with_name(name)
    (d,) = result.metrics().query(query)["distributions"]
    return d.committed


@pytest.fixture(scope="session")
def km(tmp_path_factory) -> str:
    """K MFCC frames of one real utterance as centroids: real units without fitting k-means."""
    (frames,) = build_features(ExtractorSpec("mfcc")).features([wave("9901-99011-0000")])
    path = tmp_path_factory.mktemp("km") / "km.npy"
    np.save(path, frames[:: len(frames) // K][:K])
    return str(path)


@pytest.fixture(scope="session")
def t2u(tmp_path_factory) -> str:
    """An untrained T2U model folder that generates in milliseconds. Its greedy units are one
    unit repeated up to each text's limit (seed 0 would stop at once): enough to tell texts
    and batches apart."""
    torch.manual_seed(1)
    model = build_model(K, load_preset("tiny", d_model=32, layers=1, heads=2, ffn=64))
    path = tmp_path_factory.mktemp("t2u") / "t2u"
    T2U(model, build_tokenizer()).save(path)
    return str(path)

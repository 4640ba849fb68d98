"""Shared fixtures: the sample corpora, made once per test session by the real generator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.samples import make_corpora

SAMPLE_UTTERANCES = 32


@pytest.fixture(scope="session")
def sample(tmp_path_factory) -> dict:
    """The generator's report: ``root`` plus, per corpus, what a reader should find."""
    root = tmp_path_factory.mktemp("corpora")
    info = make_corpora(root, SAMPLE_UTTERANCES, seed=0)
    return {**info, "root": root}


@pytest.fixture
def damaged(sample, tmp_path) -> Path:
    """A private copy of the sample corpora that a test may damage."""
    copy = tmp_path / "corpora"
    shutil.copytree(sample["root"], copy)
    return copy

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from matplotlib.image import imread

from pipelines import plots, publish
from tests.conftest import K

PICTURES = {"unit_lengths.png", "unit_frequency.png", "corpus_counts.png"}


def _assert_picture(path: Path) -> None:
    """A decodable PNG of a real size showing more than one colour."""
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = imread(path)
    assert pixels.shape[0] >= 200 and pixels.shape[1] >= 300
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 10


def test_card_shows_every_picture_and_only_those(published):
    folder = Path(published)
    links = re.findall(r"!\[[^\]]+\]\(([^)]+)\)", (folder / "README.md").read_text())
    assert sorted(links) == sorted(f"{publish.PLOTS}/{name}" for name in PICTURES)
    assert all(not Path(link).is_absolute() and (folder / link).is_file() for link in links)
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*.png")) == sorted(links)
    for link in links:
        _assert_picture(folder / link)


def test_corpus_counts_are_the_tokenize_stats(made, published):
    info = json.loads(Path(published, "build.json").read_text())
    table = plots.corpus_counts(info["tokenize"])
    stats = [json.loads(Path(d, "stats.json").read_text()) for d in made["units"]]
    assert list(table) == sorted(s["corpus"] for s in stats)
    for s in stats:
        row = table[s["corpus"]]
        assert row == {
            "kept": s["kept"],
            "rejected": sum(s["rejected"].values()),
            "duplicates": sum(s["duplicates"].values()),
        }
        assert sum(row.values()) == s["read"]
    assert sum(r["rejected"] + r["duplicates"] for r in table.values()) > 0


def test_unit_lengths_and_frequency_are_the_tables(published):
    data = Path(published, "data")
    rows = {
        c: [r for f in sorted((data / c).glob("*.parquet")) for r in pq.read_table(f).to_pylist()]
        for c in publish.CONFIGS
    }
    for config in ("pretrain", "cross_modal"):
        assert plots.unit_lengths(data / config, config)["units"].tolist() == [
            len(r["units"]) for r in rows[config]
        ]
    com = plots.unit_lengths(data / "chain_of_modality", "chain_of_modality")
    assert set(com) == {"speech_instruction", "speech_response"}
    assert len(com["speech_response"]) == len(rows["chain_of_modality"]) // 4  # one per chat
    assert len(plots.unit_lengths(data / "eval", "eval")["speech_instruction"]) == 60
    counts = plots.unit_frequency(data / "pretrain", K)
    expected = Counter(u for r in rows["pretrain"] for u in r["units"])
    assert counts.tolist() == [expected[u] for u in range(K)]


def test_republishing_writes_the_same_bytes(made, published, tmp_path):
    publish.publish(made["work"] / "build", tmp_path / "again")
    for name in ["README.md", *(f"{publish.PLOTS}/{p}" for p in sorted(PICTURES))]:
        assert (tmp_path / "again" / name).read_bytes() == Path(published, name).read_bytes(), name

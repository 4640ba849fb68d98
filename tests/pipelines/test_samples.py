import hashlib
import json
import re

import soundfile as sf

from pipelines.samples import make_corpora
from pipelines.samples.commonvoice import COLUMNS
from speechinstruct.texts import chats, sentences


def _digest(root) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    a = make_corpora(tmp_path / "a", utterances=8, seed=3)
    b = make_corpora(tmp_path / "b", utterances=8, seed=3)
    c = make_corpora(tmp_path / "c", utterances=8, seed=4)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert a["expected"] == b["expected"] != c["expected"]
    assert not list((tmp_path / "a").glob(".corpus-*"))  # the staging folder is gone


def test_layouts_match_the_real_corpora(sample):
    root = sample["root"]
    flacs = list((root / "LibriSpeech").glob("*/*/*/*-*-*.flac"))
    assert {p.parts[-4] for p in flacs} == {"train-clean-100", "dev-clean"}
    assert all(re.fullmatch(r"\d+-\d+-\d{4}", p.stem) for p in flacs)
    for trans in (root / "LibriSpeech").glob("*/*/*/*.trans.txt"):
        assert trans.name == f"{trans.parent.parent.name}-{trans.parent.name}.trans.txt"
    assert len({p.parts[-3] for p in flacs}) >= 4  # several speakers

    light = list((root / "librilight" / "small").glob("*/*/*_64kb.flac"))
    assert len(light) == 2
    for flac in light:
        meta = json.loads(flac.with_suffix(".json").read_text())
        assert set(meta) == {"speaker", "book_meta", "snr", "voice_activity"}  # the real keys
        assert sf.info(flac).duration >= 120 and sf.info(flac).samplerate == 16_000

    cv = root / "cv-corpus" / "en"
    for split in ("validated", "train", "dev", "test"):
        assert (cv / f"{split}.tsv").read_text().split("\n")[0].split("\t") == list(COLUMNS)
    mp3 = next((cv / "clips").glob("common_voice_en_*.mp3"))
    assert sf.info(mp3).samplerate == 48_000

    giga = json.loads((root / "GigaSpeech" / "GigaSpeech.json").read_text())
    assert all(
        re.fullmatch(r"audio/podcast/P\d{4}/POD\d{10}\.opus", a["path"]) for a in giga["audios"]
    )
    assert all(len(a["segments"]) >= 3 for a in giga["audios"])
    tags = {s for a in giga["audios"] for seg in a["segments"] for s in seg["subsets"]}
    assert {"{XS}", "{S}", "{DEV}", "{TEST}"} <= tags
    texts = " ".join(seg["text_tn"] for a in giga["audios"] for seg in a["segments"])
    assert "<SIL>" in texts and "<NOISE>" in texts and "<PERIOD>" in texts


def test_moss_chats(sample):
    records = json.loads((sample["root"] / "moss" / "en_helpfulness.json").read_text())
    assert len(records) >= 300 and all(set(r) == {"plain_text", "prefix"} for r in records)
    turns = [r["plain_text"].count("<eoh>") for r in records]
    assert max(turns) >= 2 and min(turns) == 1
    first_answers = [re.search(r"\[MOSS\]: (.*?) <eoa>", r["plain_text"]).group(1) for r in records]
    assert any(len(a.split()) > 35 for a in first_answers)
    assert sum(len(a.split()) < 35 for a in first_answers) >= 200
    assert records[0]["plain_text"].startswith("[Human]: ")


def test_shipped_texts():
    assert len(set(sentences())) == len(sentences()) >= 500
    assert len(chats()) >= 300

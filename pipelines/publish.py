"""``speechgpt publish``: a ``build`` output → a dataset folder ``datasets.load_dataset`` reads.

``DS/README.md`` (the dataset card: YAML ``configs`` with ``data_files`` globs, features,
row counts, pictures, how it was built), ``DS/plots/*.png`` (the card's pictures) and
``DS/data/<config>/<split>-NNNNN-of-NNNNN.parquet``. The folder appears whole (its
``_SUCCESS.json`` is written last); ``--push-to-hub REPO`` uploads it with
``huggingface_hub``. Input and output may be URIs; the input must be a finished ``build``
output. Row counts come from its marker and the shards' footers; the card's pictures from at
most ``--plot-shards`` shards per table.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from pipelines import arguments, plots
from schemas import SCHEMA_VERSION, features
from speechinstruct import storage

CONFIGS = ("cross_modal", "chain_of_modality", "text_chat", "pretrain", "eval")
SPLIT_ORDER = ("train", "validation", "test")
PLOTS = "plots"  # the card's pictures, beside data/
PLOT_SHARDS = 8


def _splits(build: str, files: list[str]) -> dict[str, dict[str, int]]:
    """Per split: rows and uncompressed bytes, from the Parquet footers of ``files``."""
    counts: dict[str, dict[str, int]] = {}
    for f in files:
        with storage.open_read(storage.join(build, f)) as opened:
            meta = pq.read_metadata(opened)
        split = counts.setdefault(
            storage.name(f).split("-")[0], {"num_examples": 0, "num_bytes": 0}
        )
        split["num_examples"] += meta.num_rows
        split["num_bytes"] += sum(
            meta.row_group(i).total_byte_size for i in range(meta.num_row_groups)
        )
    return dict(sorted(counts.items(), key=lambda kv: SPLIT_ORDER.index(kv[0])))


def draw_pictures(
    build: str, folder: Path, configs: list[str], info: dict, max_files: int | None = PLOT_SHARDS
) -> dict[str, str]:
    """Draw the card's pictures into the local ``folder`` from at most ``max_files`` shards
    of each table; returns ``{file name: caption}``."""
    drawn = {}
    build = str(build)
    lengths = {
        c: plots.unit_lengths(storage.join(build, c), c, max_files)
        for c in configs
        if plots.unit_columns(c)
    }
    plots.plot_unit_lengths(lengths, folder / "unit_lengths.png")
    drawn["unit_lengths.png"] = "unit-sequence lengths per config"
    k = info.get("extractor", {}).get("k")
    if "pretrain" in configs and k:
        counts = plots.unit_frequency(storage.join(build, "pretrain"), k, max_files=max_files)
        plots.plot_unit_frequency(counts, folder / "unit_frequency.png", "Units in pretrain")
        drawn["unit_frequency.png"] = "unit frequency over pretrain"
    if info.get("tokenize"):
        table = plots.corpus_counts(info["tokenize"])
        plots.plot_corpus_counts(table, folder / "corpus_counts.png")
        drawn["corpus_counts.png"] = "records kept, rejected and duplicate per corpus"
    return drawn


def card_header(counts: dict[str, dict[str, dict[str, int]]], configs: list[str]) -> dict:
    """The card's YAML header: configs with their ``data_files`` globs, features, splits."""
    return {
        "configs": [
            {
                "config_name": c,
                "default": c == configs[0],
                "data_files": [{"split": s, "path": f"data/{c}/{s}-*.parquet"} for s in counts[c]],
            }
            for c in configs
        ],
        "dataset_info": [
            {
                "config_name": c,
                "features": features(c)._to_yaml_list(),
                "splits": [{"name": s, **n} for s, n in counts[c].items()],
            }
            for c in configs
        ],
        "language": ["en"],
        "task_categories": ["automatic-speech-recognition", "text-to-speech", "text-generation"],
        "tags": ["speech", "discrete-units", "speechgpt", "speechinstruct"],
    }


def card(
    counts: dict[str, dict[str, dict[str, int]]], info: dict, pictures: dict[str, str] | None = None
) -> str:
    """The dataset card: YAML header for ``datasets``/the Hub, then how it was made.

    ``pictures`` (``{file name under PLOTS/: caption}``) are shown as relative image links.
    """
    configs = [c for c in CONFIGS if counts.get(c)]
    header = card_header(counts, configs)
    ex = info.get("extractor", {})
    rows = "\n".join(
        f"| `{c}` | {s} | {n['num_examples']} |" for c in configs for s, n in counts[c].items()
    )
    images = "".join(
        f"![{caption}]({PLOTS}/{name})\n\n" for name, caption in (pictures or {}).items()
    )
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# SpeechInstruct

Cross-modal and chain-of-modality instructions in the style of SpeechGPT (Zhang et al.,
2023): speech as discrete units `<sosp><u1><u2>…<eosp>`, built by `speechgpt build`.

```python
from datasets import load_dataset
ds = load_dataset("path/to/this/folder", "chain_of_modality")
```

| config | split | rows |
|---|---|---|
{rows}

Configs: `cross_modal` (template 1: ASR/TTS with a task description), `chain_of_modality`
(s2s, s2t, t2s, t2t with `[tq]`/`[ta]`/`[ua]`), `text_chat` (the chats' turns as text,
`human` and `answer` lists, for stage 2), `pretrain` (unit sequences for stage 1),
`eval` (6 roles × 10 spoken instruction/response pairs). `prompt` is what the model
reads; `response` is what it learns to write. Unit columns are `int16`.

{images}## How it was built

- corpora: {", ".join(info.get("corpora", []))}
- unit extractor: {ex.get("name")} (layer {ex.get("layer")}), K = {ex.get("k")}, centroids
  hash `{ex.get("centroids_hash")}` ({info.get("kmeans")}); checkpoint: {info.get("checkpoint")}
- speech for chain-of-modality: {info.get("speech_backend")} (T2U checkpoint: {info.get("t2u")})
- chain_of_modality prompting: {info.get("prompting", "com")} (`com`: Appendix C's templates;
  `standard`: Appendix E's, the paper's ablation)
- eval pairs: SpeechInstruct's 60 (`source` `speechinstruct`) and
  {info.get("eval_extra_rows", 0)} of the {info.get("eval_extra_read", 0)} read from
  --eval-extra {info.get("eval_extra")} (`source` `eval-extra`)
- chats: {info.get("chats")} ({info.get("chats_read")} read); responses under
  {info.get("max_response_words")} words
- seed {info.get("seed")}, ASR probability {info.get("asr_probability")}, schema version
  {SCHEMA_VERSION}
"""


def publish(build: str | Path, output: str | Path, plot_shards: int | None = PLOT_SHARDS) -> dict:
    """Write the dataset folder ``output`` from the finished build output ``build``."""
    build, output = storage.normalize(build), storage.normalize(output)
    marker = storage.require_complete(build, "build output")
    info = storage.read_json(storage.join(build, "build.json"))
    staging = storage.start(output)
    counts, tables = {}, {}
    for config in CONFIGS:
        files = marker["tables"].get(config, {}).get("files", [])
        counts[config] = _splits(build, files)
        for f in files:
            storage.copy_file(storage.join(build, f), storage.join(staging, "data", f))
        if files:
            tables[config] = {
                "files": [f"data/{f}" for f in files],
                "rows": {s: n["num_examples"] for s, n in counts[config].items()},
            }
    if not any(counts.values()):
        raise ValueError(f"{build} holds no rows for any of {CONFIGS}")
    with tempfile.TemporaryDirectory() as local:
        configs = [c for c in CONFIGS if counts[c]]
        drawn = draw_pictures(build, Path(local), configs, info, plot_shards)
        for picture in drawn:
            storage.copy_file(str(Path(local, picture)), storage.join(staging, PLOTS, picture))
    storage.write_text(storage.join(staging, "README.md"), card(counts, info, drawn))
    storage.write_json(storage.join(staging, "build.json"), info)
    storage.commit(staging, output, {"job": "publish", "tables": tables, "counts": counts})
    return counts


def push(folder: str, repo: str) -> None:
    from huggingface_hub import HfApi

    api = HfApi(token=os.environ.get("HF_TOKEN"))
    api.create_repo(repo, repo_type="dataset", exist_ok=True)
    api.upload_folder(folder_path=storage.local_copy(folder), repo_id=repo, repo_type="dataset")


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt publish", description=__doc__)
    parser.add_argument("--input", required=True, help="a `speechgpt build` output folder")
    parser.add_argument("--output", required=True, help="the dataset folder to write")
    parser.add_argument("--push-to-hub", metavar="REPO", help="also upload (token: HF_TOKEN)")
    parser.add_argument(
        "--plot-shards",
        type=int,
        default=PLOT_SHARDS,
        help="shards per table read for the card's pictures",
    )
    args, beam_args = parser.parse_known_args(argv)
    storage.configure(arguments.pipeline_options(beam_args))
    output = storage.normalize(args.output)
    counts = publish(storage.normalize(args.input), output, args.plot_shards)
    print(f"publish: {json.dumps(counts)} -> {args.output}")
    if args.push_to_hub:
        push(output, args.push_to_hub)
        print(f"publish: uploaded to the Hub dataset {args.push_to_hub}")
    return counts

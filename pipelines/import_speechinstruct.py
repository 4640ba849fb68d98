"""``speechgpt import-speechinstruct``: the released SpeechInstruct jsonl files → our
published dataset layout, so the trainer reads them like a dataset we built.

Each line of the release (``cross_modal_instruction.jsonl``, 13 GB;
``chain_of_modality_instruction.jsonl``) is ``{"prefix": system prompt, "plain_text":
"[Human]: … <eoh> [SpeechGPT]: …<eoa>"}``. Lines are streamed (memory does not grow with
the file) and classified by the released templates:

- ``cross_modal``: ``[Human]: {description} This is input: {units|text}<eoh> [SpeechGPT]:
  {text|units}<eoa>`` → ``asr`` or ``tts``;
- ``chain_of_modality``: ``[Human]: {units|text}<eoh>. [SpeechGPT]: `` then
  ``{transcript}; [ta] {text}; [ua] {units}`` (s2s), ``{transcript}; [ta] {text}`` (s2t),
  ``[ta] {text}; [ua] {units}`` (t2s) or ``[ta] {text}``/plain text (t2t, text-only chat).

``prompt`` is the line's prefix plus its text through ``[SpeechGPT]: ``; ``response`` is
the rest, verbatim. A line that is not JSON, or matches no template, or holds a unit
outside [0, K), is a ``rejects`` row with its reason. Shards of ``--rows-per-shard`` rows;
the card records the source files, the prompt style ``released``, the system prompt and K,
and ``train`` reads the style from it. The output appears whole (``_SUCCESS.json`` last).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from pipelines.publish import card_header
from schemas import schema
from speechinstruct import storage
from speechinstruct.units import parse_units

UNITS = r"<sosp>(?:<\d+>)*<eosp>"
SPLIT = "[SpeechGPT]: "
_HUMAN = re.compile(r"\[Human\]:\s*(?P<human>.*?)\s*<eoh>\.?\s*$", re.S)
_INPUT = re.compile(r"(?P<description>.*?)\s*This is input:\s*(?P<input>.*)", re.S)
_ANSWER = re.compile(r"(?P<answer>.*?)\s*<eoa>", re.S)
_TAIL = re.compile(r"[\s.]*")  # what the release has after <eoa>: nothing, " " or "."
_COM = re.compile(
    r"(?:\[tq\]\s*)?(?P<tq>.*?);\s*\[ta\]\s*(?P<ta>.*?)(?:;\s*\[ua\]\s*(?P<ua>" + UNITS + "))?"
    r"|\[ta\]\s*(?P<ta2>.*?)(?:;\s*\[ua\]\s*(?P<ua2>" + UNITS + "))?",
    re.S,
)
K = 1000
ROWS_PER_SHARD = 100_000
GROUP_ROWS = 1_000  # rows held in memory per table
NOT_JSON, NO_TEMPLATE, BAD_UNITS = "not_json", "no_template", "unit_out_of_range"


def _units(text: str) -> list[int] | None:
    return parse_units(text) if re.fullmatch(UNITS, text.strip()) else None


def classify(prefix: str, plain: str) -> tuple[str, dict]:
    """``(config, row)`` for a released line; ValueError(reason) if it matches no template."""
    head, sep, rest = plain.partition(SPLIT)
    human, answer = _HUMAN.fullmatch(head.strip()), _ANSWER.match(rest)
    if not sep or human is None or answer is None or not _TAIL.fullmatch(rest[answer.end() :]):
        raise ValueError(NO_TEMPLATE)
    row = {"prompt": prefix + head + sep, "response": rest}
    said, reply = human.group("human"), answer.group("answer").strip()
    cross = _INPUT.fullmatch(said)
    if cross:
        given = cross.group("input").strip()
        units, out_units = _units(given), _units(reply)
        if units is not None and out_units is None and reply:
            task, text = "asr", reply
        elif units is None and out_units is not None and given:
            task, text, units = "tts", given, out_units
        else:
            raise ValueError(NO_TEMPLATE)
        return "cross_modal", row | {
            "task": task,
            "description": cross.group("description"),
            "units": units,
            "text": text,
        }
    speech_in = _units(said)
    com = _COM.fullmatch(reply)
    if com and com.group("ta") is not None:
        if speech_in is None:
            raise ValueError(NO_TEMPLATE)  # a transcript answers speech only
        ta, ua = com.group("ta"), com.group("ua")
        fmt = "s2s" if ua else "s2t"
    elif com and com.group("ta2") is not None:
        ta, ua = com.group("ta2"), com.group("ua2")
        fmt = ("s2s" if ua else "s2t") if speech_in is not None else ("t2s" if ua else "t2t")
    elif speech_in is None and reply and "<sosp>" not in reply:
        ta, ua, fmt = reply, None, "t2t"  # a text-only chat turn
    else:
        raise ValueError(NO_TEMPLATE)
    return "chain_of_modality", row | {
        "format": fmt,
        "text_instruction": "" if speech_in is not None else said,
        "text_response": ta.strip(),
        "speech_instruction": speech_in or [],
        "speech_response": parse_units(ua) if ua else [],
    }


class _Shards:
    """One table's Parquet shards of ``rows_per_shard`` rows, written a row group of
    ``GROUP_ROWS`` at a time (memory holds one group), renamed ``-of-N`` at the end."""

    def __init__(self, folder: str, table: str, rows_per_shard: int):
        self.folder, self.table, self.limit = folder, table, rows_per_shard
        self.files: list[str] = []
        self.rows: list[dict] = []
        self.count = self.bytes = self.in_file = 0
        self.sink = self.writer = None

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        if len(self.rows) >= min(GROUP_ROWS, self.limit - self.in_file):
            self._write_group()

    def _write_group(self) -> None:
        if not self.rows:
            return
        if self.writer is None:
            path = storage.join(self.folder, "data", self.table, f"part-{len(self.files):05d}")
            self.sink = storage.open_write(path)
            self.writer = pq.ParquetWriter(self.sink, schema(self.table))
            self.files.append(path)
        group = pa.Table.from_pylist(self.rows, schema=schema(self.table))
        self.writer.write_table(group)
        self.bytes += group.nbytes
        self.in_file += len(self.rows)
        self.rows = []
        if self.in_file >= self.limit:
            self._close()

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.sink.close()
        self.sink = self.writer = None
        self.in_file = 0

    def finish(self) -> list[str]:
        """Rename to ``train-NNNNN-of-NNNNN.parquet``; returns the names under the folder."""
        self._write_group()
        self._close()
        names = []
        for i, path in enumerate(self.files):
            name = f"data/{self.table}/train-{i:05d}-of-{len(self.files):05d}.parquet"
            storage.copy_file(path, storage.join(self.folder, name))
            storage.delete(path)
            names.append(name)
        return names


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        prog="speechgpt import-speechinstruct",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--input", nargs="+", required=True, help="released .jsonl files (URIs)")
    parser.add_argument("--output", required=True, help="the dataset folder to write")
    parser.add_argument("--num-units", type=int, default=K, help="K of the release's units")
    parser.add_argument("--rows-per-shard", type=int, default=ROWS_PER_SHARD)
    args = parser.parse_args(argv)
    output = storage.normalize(args.output)
    staging = storage.start(output)
    shards = {
        t: _Shards(staging, t, args.rows_per_shard)
        for t in ("cross_modal", "chain_of_modality", "rejects")
    }
    counts: Counter = Counter()
    prefixes: Counter = Counter()
    for path in args.input:
        source = storage.name(path)
        with storage.text_stream(path) as lines:
            for number, line in enumerate(lines, 1):
                if not line.strip():
                    continue
                line_id = f"{source}:{number}"
                try:
                    table, row = _import_line(line, args.num_units)
                except ValueError as e:
                    table, row = (
                        "rejects",
                        {
                            "corpus": "speechinstruct",
                            "source": None,
                            "stage": "import",
                            "reason": str(e),
                            "detail": line.strip()[:200],
                        },
                    )
                else:
                    prefixes[row["prompt"][: row["prompt"].index("[Human]")]] += 1
                shards[table].add({"id": line_id, **row})
                kind = row["reason"] if table == "rejects" else row.get("task") or row["format"]
                counts[f"{table}/{kind}"] += 1
    files = {t: s.finish() for t, s in shards.items()}
    tables = [t for t in ("cross_modal", "chain_of_modality") if shards[t].count]
    if not tables:
        raise ValueError(f"no line of {args.input} matches a released template: {dict(counts)}")
    configs = [*tables, "rejects"] if shards["rejects"].count else tables
    split_counts = {
        t: {"train": {"num_examples": shards[t].count, "num_bytes": shards[t].bytes}}
        for t in configs
    }
    system = prefixes.most_common(1)[0][0] if prefixes else ""
    info = {
        "job": "import-speechinstruct",
        "sources": args.input,
        "prompt_style": "released",
        "system": system,
        "extractor": {"name": "mhubert", "layer": 11, "k": args.num_units},
        "counts": dict(sorted(counts.items())),
    }
    storage.write_json(storage.join(staging, "build.json"), info)
    storage.write_text(storage.join(staging, "README.md"), _card(split_counts, configs, info))
    storage.commit(
        staging,
        output,
        {
            "job": "import-speechinstruct",
            "counts": split_counts,
            "tables": {t: {"files": files[t]} for t in configs},
        },
    )
    print(f"import-speechinstruct: {json.dumps(info['counts'])} -> {output}")
    return info


def _import_line(line: str, k: int) -> tuple[str, dict]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        raise ValueError(NOT_JSON) from None
    if not isinstance(record, dict) or not isinstance(record.get("plain_text"), str):
        raise ValueError(NO_TEMPLATE)
    table, row = classify(str(record.get("prefix") or ""), record["plain_text"])
    units = [
        *row.get("units", []),
        *row.get("speech_instruction", []),
        *row.get("speech_response", []),
    ]
    if any(not 0 <= u < k for u in units):
        raise ValueError(BAD_UNITS)
    return table, row


def _card(counts: dict, configs: list[str], info: dict) -> str:
    rows = "\n".join(f"| `{c}` | {counts[c]['train']['num_examples']} |" for c in configs)
    header = card_header(counts, configs)
    return f"""---
{yaml.safe_dump(header, sort_keys=False).strip()}
---

# SpeechInstruct (released), imported

The released SpeechInstruct files of SpeechGPT (Zhang et al., 2023), in this project's
dataset layout by `speechgpt import-speechinstruct`. Rows keep the released format
(prompt style `released`): `prompt` is the system prompt and the human turn through
`[SpeechGPT]: `, `response` is the rest of the line, verbatim. K = {info["extractor"]["k"]}.

| config | rows |
|---|---|
{rows}

- sources: {", ".join(info["sources"])}
- counts by kind and reject reason: `{json.dumps(info["counts"])}`
- system prompt (`prefix`): `{json.dumps(info["system"])}`
"""

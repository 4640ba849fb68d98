"""``speechgpt build``: SpeechInstruct from ``tokenize`` outputs and moss-style chats (Beam).

Tables: ``cross_modal`` (template 1), ``pretrain`` (stage-1 unit sequences),
``chain_of_modality`` (four formats per quadruplet; speech from the T2U model or a TTS
voice + the unit extractor), ``text_chat`` (every turn of every chat that parses, as text:
stage 2 keeps the LLM's text ability, §5.1), ``eval`` (6 roles × 10 spoken pairs, §3.3)
and ``rejects``. Each under ``BUILD/<table>/<split>-NNNNN-of-NNNNN.parquet``, with
``BUILD/build.json`` and, last, ``BUILD/_SUCCESS.json``. The chats file (a JSON array or
JSONL) is read inside the job; every input and output may be a URI. The ``--units``
folders must be finished ``tokenize`` outputs: their markers give the extractor and the
counts, no unit row is read back here.
"""

from __future__ import annotations

import argparse
import json
import re
import time

import apache_beam as beam
import ijson

from pipelines import arguments
from pipelines.steps.speech import TextToUnits
from pipelines.steps.summary import WriteSummary, read_summary, tables_of
from pipelines.steps.write import SPLIT, WriteTable
from schemas import reasons
from speechinstruct import instructions, storage, texts
from speechinstruct.moss import is_english, parse_plain_text

TABLES = ("cross_modal", "pretrain", "chain_of_modality", "text_chat", "eval", "rejects")
REJECTS = "rejects"
SHIPPED, EXTRA = "speechinstruct", "eval-extra"  # the eval table's sources


def _reject(id_: str, reason: str, detail: str) -> dict:
    return {
        "id": id_,
        "corpus": "moss",
        "source": None,
        "stage": "build",
        "reason": reason,
        "detail": detail,
    }


class ReadChatsFn(beam.DoFn):
    """A chats file (a JSON array, streamed with ijson, or JSONL) → ``(index, record)``;
    a line or tail that does not parse is ``(index, None)``, for ``ParseChatFn`` to reject.
    Also reads the ``--eval-extra`` file, counted under its own ``counter``."""

    def __init__(self, max_chats: int | None, counter: str = "chats_read"):
        self.max_chats = max_chats
        self.read = beam.metrics.Metrics.counter("build", counter)

    def process(self, path: str):
        with storage.open_read(path) as f:
            start = f.read(64)
            bom = 3 if start.startswith(b"\xef\xbb\xbf") else 0  # a UTF-8 BOM is not JSON
            f.seek(bom)
            array = start[bom:].lstrip(b" \t\r\n").startswith(b"[")
            for index, record in enumerate(_array(f) if array else _lines(f)):
                if self.max_chats is not None and index >= self.max_chats:
                    return
                self.read.inc()
                yield index, record


def _array(f):
    try:
        yield from ijson.items(f, "item", use_float=True)
    except ijson.JSONError:
        yield None  # the rest of the array is unreadable: one reject says so


def _lines(f):
    for line in f:
        if line.strip():
            try:
                yield json.loads(line)
            except ValueError:
                yield None


class ParseChatFn(beam.DoFn):
    """A moss record → its first turn ``(chat_id, instruction, response)``, or a reject."""

    def __init__(self, max_words: int):
        self.max_words = max_words
        self.parsed = beam.metrics.Metrics.counter("build", "chats_parsed")

    def process(self, item: tuple[int, object]):
        index, record = item
        chat_id = f"moss_{index:06d}"
        try:
            if not isinstance(record, dict) or not isinstance(record.get("plain_text"), str):
                raise ValueError("record has no 'plain_text' string")
            (human, answer), *_ = parse_plain_text(record["plain_text"])
        except ValueError as e:
            yield self._reject(chat_id, reasons.BAD_CHAT, str(e))
            return
        if not (is_english(human) and is_english(answer)):
            yield self._reject(chat_id, reasons.NOT_ENGLISH, human[:80])
        elif len(answer.split()) >= self.max_words:
            detail = f"{len(answer.split())} words >= {self.max_words}"
            yield self._reject(chat_id, reasons.LONG_RESPONSE, detail)
        else:
            self.parsed.inc()
            yield chat_id, human, answer

    @staticmethod
    def _reject(chat_id: str, reason: str, detail: str):
        beam.metrics.Metrics.counter("build", f"rejected_{reason}").inc()
        return beam.pvalue.TaggedOutput(REJECTS, _reject(chat_id, reason, detail))


class ChatTurnsFn(beam.DoFn):
    """A moss record → a ``text_chat`` row with all its turns; a record that does not parse
    yields nothing here (``ParseChatFn`` rejects it as ``bad_chat``)."""

    def __init__(self, validation_share: float):
        self.share = validation_share
        self.chats = beam.metrics.Metrics.counter("build", "text_chats")

    def process(self, item: tuple[int, object]):
        index, record = item
        try:
            turns = parse_plain_text(record["plain_text"])
        except (TypeError, KeyError, ValueError):
            return
        self.chats.inc()
        chat_id = f"moss_{index:06d}"
        yield {
            "id": chat_id,
            "human": [human for human, _ in turns],
            "answer": [answer for _, answer in turns],
            SPLIT: instructions.split_of(chat_id, self.share),
        }


class ParseEvalPairFn(beam.DoFn):
    """An AlpacaEval record (``instruction`` and ``output`` strings; other keys ignored) →
    an extra ``eval`` pair ``(key, pair)``, or a reject."""

    def __init__(self):
        self.parsed = beam.metrics.Metrics.counter("build", "eval_extra_parsed")

    def process(self, item: tuple[int, object]):
        index, record = item
        key = f"eval_extra_{index:05d}"
        if not isinstance(record, dict):  # None: the line is not JSON
            yield self._reject(key, reasons.BAD_METADATA, "not a JSON object")
            return
        missing = [k for k in ("instruction", "output") if not isinstance(record.get(k), str)]
        if missing:
            yield self._reject(key, reasons.BAD_METADATA, f"no {missing[0]!r} string")
        elif not (record["instruction"].strip() and record["output"].strip()):
            yield self._reject(key, reasons.EMPTY_TEXT, "empty instruction or output")
        else:
            self.parsed.inc()
            pair = {"instruction": record["instruction"], "response": record["output"]}
            yield key, {**pair, "role": "", "source": EXTRA}

    @staticmethod
    def _reject(key: str, reason: str, detail: str):
        beam.metrics.Metrics.counter("build", f"eval_extra_rejected_{reason}").inc()
        return beam.pvalue.TaggedOutput(REJECTS, {**_reject(key, reason, detail), "corpus": EXTRA})


def _one_per_id(id_: str, rows):
    """Unit rows of one id from several ``--units`` inputs: the first by corpus and source
    is used, the others become rejects (the same utterance tokenized twice)."""
    first, *others = sorted(rows, key=lambda r: (r["corpus"], json.dumps(r["source"])))
    yield first
    for row in others:
        reject = _reject(id_, reasons.BAD_METADATA, "id also in another --units input")
        yield beam.pvalue.TaggedOutput(
            REJECTS, {**reject, "corpus": row["corpus"], "source": row["source"]}
        )


def _quadruplet(item, validation_share: float, prompting: str = "com"):
    """CoGroupByKey result → four CoM rows, or a reject when speech is missing."""
    chat_id, grouped = item
    ((human, answer),) = grouped["text"]
    speech = dict(grouped["speech"])
    if not speech.get("instruction") or not speech.get("response"):
        reject = _reject(chat_id, reasons.NO_SPEECH, "empty units")
        yield beam.pvalue.TaggedOutput(REJECTS, reject)
        return
    yield from instructions.chain_of_modality(
        chat_id,
        human,
        answer,
        speech["instruction"],
        speech["response"],
        validation_share,
        prompting,
    )


def _eval_row(item):
    key, grouped = item
    (pair,), speech = grouped["text"], dict(grouped["speech"])
    return {
        "id": key,
        "role": pair["role"],
        "text_instruction": pair["instruction"],
        "text_response": pair["response"],
        "speech_instruction": speech["instruction"],
        "speech_response": speech["response"],
        "source": pair.get("source", SHIPPED),
        SPLIT: "test",
    }


def _speech_requests(key: str, instruction: str, response: str):
    yield f"{key}|instruction", instruction
    yield f"{key}|response", response


def _pair_texts(pair: dict) -> tuple[str, str]:
    return pair["instruction"], pair["response"]


def _by_owner(item):
    key, units = item
    owner, role = key.rsplit("|", 1)
    return owner, (role, units)


def build(p, args, staging: str) -> None:
    """The pipeline graph, writing the tables and a summary under ``staging``."""
    spec = arguments.extractor_spec(args)
    read_units = [
        p | f"ReadUnits{i}" >> beam.io.ReadFromParquet(storage.join(out, "units", "*.parquet"))
        for i, out in enumerate(args.units)
    ] | "AllUnits" >> beam.Flatten()
    units = (
        read_units
        | "UnitById" >> beam.Map(lambda r: (r["id"], r))
        | "GroupUnitIds" >> beam.GroupByKey()
        | "OneUnitPerId" >> beam.FlatMapTuple(_one_per_id).with_outputs(REJECTS, main="ok")
    )
    share = args.validation_share
    cross = (
        units.ok
        | "WithText" >> beam.Filter(lambda r: bool(r["text"]))
        | "CrossModal" >> beam.Map(instructions.cross_modal, args.seed, args.asr_probability, share)
    )
    pretrain = (
        units.ok
        | "PretrainCorpora"
        >> beam.Filter(lambda r, c=tuple(args.pretrain_corpora): r["corpus"] in c)
        | "Pretrain"
        >> beam.Map(
            lambda r: {
                "id": r["id"],
                "units": r["units"],
                SPLIT: instructions.split_of(r["id"], share),
            }
        )
    )
    chats = (
        p
        | "ChatsFile" >> beam.Create([args.chats])
        | "ReadChats" >> beam.ParDo(ReadChatsFn(args.max_chats))
        | "SpreadChats" >> beam.Reshuffle()
    )
    parsed = chats | "ParseChats" >> beam.ParDo(ParseChatFn(args.max_response_words)).with_outputs(
        REJECTS, main="ok"
    )
    text_chat = chats | "TextChats" >> beam.ParDo(ChatTurnsFn(share))
    com_speech = (
        parsed.ok
        | "ChatTexts" >> beam.FlatMapTuple(_speech_requests)
        | "ChatSpeech" >> TextToUnits(args.speech_backend, args.t2u, spec, args.kmeans)
        | "ChatOwner" >> beam.Map(_by_owner)
    )
    com = (
        {
            "text": parsed.ok | "ChatKey" >> beam.MapTuple(lambda c, h, a: (c, (h, a))),
            "speech": com_speech,
        }
        | "JoinChats" >> beam.CoGroupByKey()
        | "CoM" >> beam.FlatMap(_quadruplet, share, args.prompting).with_outputs(REJECTS, main="ok")
    )
    pairs = [
        (f"eval_{re.sub(r'[^a-z]+', '_', e['role'])}_{i % 10}", e)
        for i, e in enumerate(texts.eval_pairs())
    ]
    extra_records = (
        p
        | "EvalExtraFile" >> beam.Create([args.eval_extra] if args.eval_extra else [])
        | "ReadEvalExtra" >> beam.ParDo(ReadChatsFn(None, "eval_extra_read"))
    )
    extra = extra_records | "ParseEvalExtra" >> beam.ParDo(ParseEvalPairFn()).with_outputs(
        REJECTS, main="ok"
    )
    eval_pairs = (
        p | "EvalPairs" >> beam.Create(pairs),
        extra.ok,
    ) | "AllEvalPairs" >> beam.Flatten()
    eval_speech = (
        eval_pairs
        | "EvalTexts" >> beam.FlatMapTuple(lambda k, e: _speech_requests(k, *_pair_texts(e)))
        | "EvalSpeech" >> TextToUnits("tts", None, spec, args.kmeans)
        | "EvalOwner" >> beam.Map(_by_owner)
    )
    evaluation = (
        {"text": eval_pairs, "speech": eval_speech}
        | "JoinEval" >> beam.CoGroupByKey()
        | "Eval" >> beam.Map(_eval_row)
    )
    rejects = (
        parsed[REJECTS],
        com[REJECTS],
        units[REJECTS],
        extra[REJECTS],
    ) | "AllRejects" >> beam.Flatten()
    tables = {
        "cross_modal": cross,
        "pretrain": pretrain,
        "chain_of_modality": com.ok,
        "text_chat": text_chat,
        "eval": evaluation,
        "rejects": rejects,
    }
    shards = arguments.shards(args)
    files = [
        pcoll
        | f"Write_{name}"
        >> WriteTable(name, storage.join(staging, name), shards.num_shards, shards.target_bytes)
        for name, pcoll in tables.items()
    ]
    counts = (
        chats | "CountChats" >> beam.Map(lambda c: ("chats_read", 1)),
        rejects | "CountRejects" >> beam.Map(lambda r: (f"rejected/{r['corpus']}", 1)),
        extra_records | "CountEvalExtra" >> beam.Map(lambda r: ("eval_extra_read", 1)),
        evaluation | "CountEval" >> beam.Map(lambda r: (f"eval/{r['source']}", 1)),
    ) | "AllCounts" >> beam.Flatten()
    _ = (counts, files | "AllFiles" >> beam.Flatten()) | "Summary" >> WriteSummary(staging)


def _inputs(unit_dirs: list[str]) -> list[dict]:
    """The markers of the ``--units`` folders; refuses unfinished ones and a mix of
    extractors."""
    markers = [storage.require_complete(d, "tokenize output") for d in unit_dirs]
    extractors = {json.dumps(m["stats"]["extractor"], sort_keys=True) for m in markers}
    if len(extractors) != 1:
        raise ValueError(
            f"the --units folders were made with {len(extractors)} extractors: {sorted(extractors)}"
        )
    return markers


def run(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="speechgpt build", description=__doc__)
    parser.add_argument("--units", nargs="+", required=True, help="tokenize output folders")
    parser.add_argument("--chats", required=True, help="moss-002-sft-style JSON array or JSONL")
    parser.add_argument("--t2u", help="a train-t2u output folder (speech backend t2u)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--speech-backend", choices=("t2u", "tts"), default="t2u")
    parser.add_argument("--kmeans", required=True, help="the centroids the units were made with")
    arguments.add_extractor_args(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--asr-probability", type=float, default=0.5)
    parser.add_argument("--pretrain-corpora", nargs="+", default=["librilight"])
    parser.add_argument("--max-response-words", type=int, default=35)
    parser.add_argument("--max-chats", type=int, help="use only the first N chats")
    parser.add_argument("--validation-share", type=float, default=0.05)
    parser.add_argument(
        "--prompting",
        choices=tuple(instructions.PROMPTING),
        default="com",
        help="chain_of_modality rows in the chain-of-modality templates (Appendix C) or the "
        "standard-prompting ones (Appendix E, the paper's ablation)",
    )
    parser.add_argument(
        "--eval-extra",
        metavar="FILE.jsonl",
        help="more eval pairs: AlpacaEval-style JSON lines with 'instruction' and 'output'",
    )
    arguments.add_shard_args(parser)
    args, beam_args = parser.parse_known_args(argv)
    options = arguments.pipeline_options(beam_args)
    storage.configure(options)
    args.units = [storage.normalize(u) for u in args.units]
    args.chats, args.kmeans = storage.normalize(args.chats), storage.normalize(args.kmeans)
    args.t2u = args.t2u and storage.normalize(args.t2u)
    args.eval_extra = args.eval_extra and storage.normalize(args.eval_extra)

    start = time.perf_counter()
    markers = _inputs(args.units)
    extractor = markers[0]["stats"]["extractor"]
    from speechinstruct.extractors import load_centroids
    from speechinstruct.kmeans import centroids_hash

    centroids = load_centroids(storage.local_copy(args.kmeans))
    if centroids_hash(centroids) != extractor["centroids_hash"]:
        parser.error(f"--kmeans {args.kmeans} is not the centroids the units were made with")
    if not storage.exists(args.chats):
        parser.error(f"--chats {args.chats} does not exist")
    if args.eval_extra and not storage.exists(args.eval_extra):
        parser.error(f"--eval-extra {args.eval_extra} does not exist")

    out = storage.normalize(args.output)
    staging = storage.start(out)
    with beam.Pipeline(options=options) as p:
        build(p, args, staging)

    summary = read_summary(staging)
    tables = tables_of(summary["files"])
    counts = {table: dict(tables.get(table, {}).get("rows", {})) for table in TABLES}
    chats_read = summary["counts"].get("chats_read", 0)
    tokenized = [
        {
            k: v
            for k, v in m["stats"].items()
            if k in ("corpus", "split", "read", "kept", "rejected", "duplicates")
        }
        for m in markers
    ]
    info = {
        "counts": counts,
        "corpora": sorted({m["stats"]["corpus"] for m in markers if m["stats"]["kept"]}),
        "tokenize": tokenized,
        "extractor": extractor,
        "checkpoint": args.checkpoint,
        "kmeans": args.kmeans,
        "units": args.units,
        "chats": args.chats,
        "chats_read": chats_read,
        "speech_backend": args.speech_backend,
        "t2u": args.t2u,
        "seed": args.seed,
        "asr_probability": args.asr_probability,
        "max_response_words": args.max_response_words,
        "prompting": args.prompting,
        "eval_extra": args.eval_extra,
        "eval_extra_read": summary["counts"].get("eval_extra_read", 0),
        "eval_extra_rows": summary["counts"].get(f"eval/{EXTRA}", 0),
        "wall_seconds": round(time.perf_counter() - start, 1),
    }
    com_chats = sum(counts["chain_of_modality"].values()) // 4
    chat_rejects = summary["counts"].get("rejected/moss", 0)
    if com_chats + chat_rejects != chats_read:
        raise RuntimeError(
            f"chats do not reconcile: {chats_read} read, {com_chats} built, {chat_rejects} rejected"
        )
    extra = {k: summary["counts"].get(f"{k}/{EXTRA}", 0) for k in ("eval", "rejected")}
    if extra["eval"] + extra["rejected"] != info["eval_extra_read"]:
        raise RuntimeError(
            f"--eval-extra does not reconcile: {info['eval_extra_read']} read, "
            f"{extra['eval']} eval rows, {extra['rejected']} rejected"
        )
    storage.write_json(storage.join(staging, "build.json"), info)
    storage.commit(staging, out, {"job": "build", "tables": tables, "stats": info})
    print(f"build: {json.dumps(counts)} -> {out}", flush=True)
    return info

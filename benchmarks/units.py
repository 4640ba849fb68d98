"""Units at scale: audio-seconds per wall-second of unit extraction, three ways, same audio.

On the sample LibriSpeech corpus (``make_corpora``, ~170 s of FLAC), per extractor:

(a) the reference pattern: one file at a time, ``soundfile`` read, fp32 model run up to
    layer 11 and no further (fairseq's ``extract_features(output_layer=11)``, which the
    reference's ``dump_hubert_feature.py`` calls), sklearn ``MiniBatchKMeans.predict``,
    run-length reduce;
(b) bare forward + assignment: waves already decoded, length-sorted groups,
    ``HubertFeatures``/``MfccFeatures`` (bf16 for HuBERT) + the torch ``Assigner``;
(c) ``speechgpt tokenize`` end to end (read, decode, Beam, dedup, Parquet), wall time of
    ``pipelines.tokenize.run``.

Plus (d) unit agreement of batched vs one-at-a-time HuBERT extraction (and of zero-padded
batches, how HuBERT-base ran before) and (e) this CPU's
matmul GFLOP/s with the throughput ceiling it implies for HuBERT-base. HuBERT-base is
randomly initialised (default ``HubertConfig()``) and the centroids are fitted on random
data: the timings are those of the real model size; the units mean nothing.

Run with ``.venv/bin/python benchmarks/run.py units``; results go to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from results import RESULTS, write_section

UTTERANCES = 56  # the sample LibriSpeech then holds ~170 s of audio
BATCH = 8  # (b): length-sorted batches of this many waves
TOKENIZE_BATCH = 16  # (c): tokenize's own --batch-size default
HUBERT_K, MFCC_K, LAYER = 1000, 100, 11
ROUNDS = 3  # (a), (b), (c) run interleaved this many times; the fastest of each is kept
RETRIES = 2  # extra runs for a measurement that never had a quiet CPU (shared machine)
QUIET = 0.2  # cores used by other processes below which a run counts as quiet
DEADLINE = float("inf")  # set by main(): no retries after ~8 min
GFLOP_PER_AUDIO_S = 14.0  # HuBERT-base up to layer 11 (conv front end ~5, 11 layers ~8)


def log(msg: str) -> None:
    print(f"[units {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- timing, with a record of what else was using the CPU meanwhile -----------------------


def _busy_cpu_s() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def others_now(seconds: float = 1.0) -> float:
    """Cores other processes use right now (sampled over ``seconds``)."""
    busy, own = _busy_cpu_s(), _own_cpu_s()
    time.sleep(seconds)
    return max(0.0, (_busy_cpu_s() - busy) - (_own_cpu_s() - own)) / seconds


def wait_quiet(limit: float = QUIET, max_wait: float = 30.0) -> None:
    """Before a timing: wait (at most ``max_wait`` s) for other processes to leave the CPU."""
    start, busy = time.perf_counter(), others_now()
    if busy <= limit:
        return
    log(f"other processes use {busy:.1f} cores; waiting up to {max_wait:.0f} s for a quiet CPU")
    while busy > limit and time.perf_counter() - start < max_wait:
        busy = others_now()
    log(f"others now at {busy:.1f} cores after {time.perf_counter() - start:.0f} s")


@contextmanager
def measure(out: dict):
    """``out`` gets ``wall`` (s), ``cpu`` (cores used by us) and ``others`` (cores used
    by other processes on the machine during the measurement)."""
    busy, own, start = _busy_cpu_s(), _own_cpu_s(), time.perf_counter()
    yield out
    wall = time.perf_counter() - start
    mine = _own_cpu_s() - own
    out.update(wall=wall, cpu=mine / wall, others=max(0.0, (_busy_cpu_s() - busy) - mine) / wall)


# --- setup --------------------------------------------------------------------------------


def make_audio(tmp: Path) -> tuple[Path, list, list[np.ndarray], float]:
    """The sample LibriSpeech: ``(root, utterances, decoded waves, total seconds)``."""
    from pipelines.audio import load
    from pipelines.records import Reject
    from pipelines.samples import make_corpora
    from pipelines.sources import librispeech

    make_corpora(tmp / "corpora", utterances=UTTERANCES, seed=0)
    root = tmp / "corpora" / "LibriSpeech"
    records = list(librispeech.read(str(root)))
    utts = [r for r in records if not isinstance(r, Reject)]
    if len(utts) != len(records):
        raise RuntimeError(f"sample corpus has {len(records) - len(utts)} rejects")
    total = sum(sf.info(u.source.path).duration for u in utts)
    waves = [load(u.source.path) for u in utts]
    log(
        f"{len(utts)} utterances, sum of durations {total:.1f} s "
        f"({min(map(len, waves)) / 16e3:.2f}–{max(map(len, waves)) / 16e3:.2f} s each)"
    )
    if not 150 <= total <= 200:
        log(f"WARNING: {total:.1f} s of audio is outside the intended 150–200 s")
    return root, utts, waves, total


def mini_corpus(root: Path, dest: Path, files: int = 2) -> Path:
    """A LibriSpeech copy with the first ``files`` utterances of one chapter (warm-up)."""
    trans = max(sorted(root.glob("*/*/*/*.trans.txt")), key=lambda p: len(p.read_text()))
    chapter = dest / "warm" / trans.parent.parent.name / trans.parent.name
    chapter.mkdir(parents=True)
    lines = trans.read_text().splitlines()[:files]
    for line in lines:
        shutil.copy(trans.parent / f"{line.split()[0]}.flac", chapter)
    (chapter / trans.name).write_text("\n".join(lines) + "\n")
    return dest


def fit_kmeans(k: int, dim: int, seed: int = 0):
    """A MiniBatchKMeans fitted on random data (untimed): the reference's predictor."""
    from sklearn.cluster import MiniBatchKMeans

    data = np.random.default_rng(seed).standard_normal((max(20 * k, 10_000), dim))
    km = MiniBatchKMeans(  # random init: k-means++ for k=1000 takes minutes on 2 cores
        n_clusters=k, init="random", n_init=1, max_iter=5, batch_size=4096, random_state=seed
    )
    return km.fit(data.astype(np.float32))


def batches(waves: list[np.ndarray], size: int) -> list[list[int]]:
    order = sorted(range(len(waves)), key=lambda i: len(waves[i]))
    return [order[i : i + size] for i in range(0, len(order), size)]


def padding(groups: list[list[int]], lengths: list[int]) -> float:
    """Share of the padded samples the model sees that are padding."""
    padded = sum(len(g) * max(lengths[i] for i in g) for g in groups)
    return 1 - sum(lengths[i] for g in groups for i in g) / padded


# --- (a) reference, (b) batched, (c) tokenize ---------------------------------------------


def warmup_waves(waves: list[np.ndarray], n: int = BATCH) -> list[np.ndarray]:
    """``n`` noise waves spread over the corpus's length range (lengths not in the corpus):
    a warm-up that also sees a few shapes, as the first calls on new shapes run slower."""
    lo, hi = min(map(len, waves)), max(map(len, waves))
    rng = np.random.default_rng(0)
    lengths = np.linspace(lo, hi, n).astype(int) + 7
    return [(0.1 * rng.standard_normal(k)).astype(np.float32) for k in lengths]


def reference(paths: list[str], forward, km, warm: list[np.ndarray]) -> dict:
    """One file at a time: read, features, sklearn predict, run-length reduce."""
    from speechinstruct.units import reduce

    for w in warm[::2]:  # warm-up
        km.predict(forward(w))
    out: dict = {}
    with measure(out):
        for path in paths:
            wave, _ = sf.read(path, dtype="float32")
            reduce(km.predict(forward(wave)))
    return out


def batched(waves: list[np.ndarray], features, assign, size: int = BATCH, warm=()) -> dict:
    """Decoded waves in length-sorted groups: ``features.features(group)`` + ``assign``."""
    for g in batches(list(warm), size):  # warm-up
        [assign(f) for f in features.features([warm[i] for i in g])]
    groups = batches(waves, size)
    units: list = [None] * len(waves)
    pads = getattr(features, "masked", True)  # HuBERT-base runs each wave alone: no padding
    out: dict = {"padding": padding(groups, [len(w) for w in waves]) if pads else 0.0}
    with measure(out):
        for g in groups:
            for i, feats in zip(g, features.features([waves[i] for i in g]), strict=True):
                units[i] = assign(feats)
    out["units"] = units
    return out


def interleaved(
    waves: list[np.ndarray], variants: dict, assign, size: int = BATCH, warm=()
) -> dict:
    """Each variant's ``features(group)`` + ``assign`` on the same length-sorted groups, taking
    turns group by group (rotating order), so a shared CPU's slow drifts hit all alike."""
    for features in variants.values():  # warm-up
        for g in batches(list(warm), size):
            [assign(f) for f in features.features([warm[i] for i in g])]
    names = list(variants)
    seconds = dict.fromkeys(names, 0.0)
    units = {k: [None] * len(waves) for k in names}
    out: dict = {}
    with measure(out):
        for n, g in enumerate(batches(waves, size)):
            for k in names[n % len(names) :] + names[: n % len(names)]:
                start = time.perf_counter()
                for i, feats in zip(g, variants[k].features([waves[i] for i in g]), strict=True):
                    units[k][i] = assign(feats)
                seconds[k] += time.perf_counter() - start
    return out | {"seconds": seconds, "units": units}


class PaddedBatches:
    """HuBERT-base as it ran before: one zero-padded forward pass per group, no mask."""

    def __init__(self, features):
        self.inner = features

    def features(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        return self.inner._forward(waves)  # waves ≤ 100 s and not normalised here


class Autocast:
    """The fp32 extractor under ``torch.autocast``: bf16 compute, with the weights recast on
    every forward pass (how ``--bf16`` ran before the weights were cast once at load)."""

    masked = False

    def __init__(self, fp32):
        self.fp32 = fp32

    def features(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return self.fp32.features(waves)


@contextmanager
def instrumented():
    """Time tokenize's own steps by wrapping (in this process only) its model handler and
    decoder: model loads, per-batch sizes, padding, inference and decode seconds."""
    from pipelines.steps import decode as decode_step
    from pipelines.steps import extract

    handler, dofn = extract.UnitModelHandler, decode_step.DecodeFn
    saved = handler.load_model, handler.run_inference, dofn.process
    info: dict = {
        "load": 0.0,
        "loads": 0,
        "infer": 0.0,
        "decode": 0.0,
        "batches": [],
        "ids": [],
        "padded": 0,
        "samples": 0,
    }

    def load_model(self):
        t = time.perf_counter()
        try:
            return saved[0](self)
        finally:
            info["load"] += time.perf_counter() - t
            info["loads"] += 1

    def run_inference(self, batch, model, inference_args=None):
        lengths = [len(d.wave) for d in batch]
        groups = extract.length_buckets(lengths, self.max_samples)
        if not getattr(model.features, "masked", True):  # HuBERT-base: one wave per pass
            groups = [[i] for i in range(len(batch))]
        info["batches"].append(len(batch))
        info["ids"].append([d.utt.id for d in batch])
        info["padded"] += sum(len(g) * max(lengths[i] for i in g) for g in groups)
        info["samples"] += sum(lengths)
        t = time.perf_counter()
        try:
            return saved[1](self, batch, model, inference_args)
        finally:
            info["infer"] += time.perf_counter() - t

    def process(self, utt):
        t = time.perf_counter()
        out = list(saved[2](self, utt))
        info["decode"] += time.perf_counter() - t
        yield from out

    handler.load_model, handler.run_inference, dofn.process = load_model, run_inference, process
    try:
        yield info
    finally:
        handler.load_model, handler.run_inference, dofn.process = saved


def tokenize(
    root: Path, warm_root: Path, out: Path, extractor: list[str], batch: int, expected: int
) -> dict:
    """``pipelines.tokenize.run`` end to end: one warm-up call on two files, then timed."""
    from pipelines.tokenize import run

    def argv(corpus: Path, dest: Path) -> list[str]:
        return [
            "--corpus",
            "librispeech",
            "--input",
            str(corpus),
            *extractor,
            "--output",
            str(dest),
            "--batch-size",
            str(batch),
        ]

    run(argv(warm_root, out.with_name(out.name + "-warm")))
    res: dict = {}
    with instrumented() as info, measure(res):
        stats = run(argv(root, out))
    if stats["kept"] != expected:
        raise RuntimeError(f"tokenize kept {stats['kept']} of {expected}: {stats}")
    info["padding"] = 1 - info["samples"] / info["padded"] if info["padded"] else 0.0
    return {**res, "stats": stats, "steps": info, "output": out}


def tokenize_units(out: Path) -> dict[str, np.ndarray]:
    """Frame units per utterance id from tokenize's ``units`` table."""
    import pyarrow.parquet as pq

    from speechinstruct.units import expand

    rows = [
        r
        for f in sorted((out / "units").glob("*.parquet"))
        for r in pq.read_table(f, columns=["id", "units", "durations"]).to_pylist()
    ]
    return {r["id"]: expand(r["units"], r["durations"]) for r in rows}


# --- (d) agreement, (e) matmul ------------------------------------------------------------


def agreement(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    if any(len(x) != len(y) for x, y in zip(a, b, strict=True)):
        raise RuntimeError("frame counts differ between the two extractions")
    return float(np.mean(np.concatenate(a) == np.concatenate(b)))


def nearest_gap(features, waves: list[np.ndarray], centroids: np.ndarray) -> float:
    """Median over frames of (2nd-nearest − nearest) / nearest centroid distance."""
    feats = torch.from_numpy(np.concatenate(features.features(waves[:8])))
    c = torch.from_numpy(centroids)
    d = torch.cdist(feats, c).topk(2, dim=1, largest=False).values
    return float(((d[:, 1] - d[:, 0]) / d[:, 0]).median())


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 8) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    torch.matmul(a, b)
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - t)
    return 2 * n**3 / float(np.median(times)) / 1e9


def best(runs: list[dict]) -> dict:
    """The fastest of repeated measurements, with every round's wall time and the most
    CPU other processes took during any of them."""
    fastest = min(runs, key=lambda x: x["wall"])
    return {
        **fastest,
        "walls": [x["wall"] for x in runs],
        "all_others": [x["others"] for x in runs],
    }


def rounds(name: str, steps: dict, count: int = ROUNDS) -> dict:
    """Run every ``steps[key](n)`` in turn, ``count`` times over, then again (up to RETRIES
    more times, before DEADLINE) for keys with no quiet run yet; the best of each key."""
    runs: dict[str, list] = {k: [] for k in steps}

    def quiet(key: str) -> bool:
        return any(x["others"] <= QUIET for x in runs[key])

    for n in range(count + RETRIES):
        keys = list(steps) if n < count else [k for k in steps if not quiet(k)]
        if n >= count and (not keys or time.perf_counter() > DEADLINE):
            break
        for key in keys:
            log(
                f"{name} ({key}) run {n + 1}" + (" (retry: no quiet run yet)" if n >= count else "")
            )
            wait_quiet()
            runs[key].append(steps[key](n))
            last = runs[key][-1]
            extra = f", {summary(last['steps'])}" if "steps" in last else ""
            log(f"{name} ({key}): {last['wall']:.1f} s, others {last['others']:.1f} cores{extra}")
    return {k: best(v) | {"first": v[0]} for k, v in runs.items()}


# --- the benchmark ------------------------------------------------------------------------


def run_hubert(
    tmp: Path, root: Path, warm: Path, paths: list[str], waves: list, ids: list[str]
) -> dict:
    from transformers import HubertConfig, HubertModel

    from speechinstruct.extractors.hubert import HubertFeatures
    from speechinstruct.kmeans import Assigner

    torch.manual_seed(0)
    model = HubertModel(HubertConfig()).eval()  # HuBERT-base size, random weights, fp32
    folder = tmp / "hubert-base-random"
    model.save_pretrained(folder)
    log("hubert: fitting MiniBatchKMeans k=1000 on random 768-d data (untimed)")
    km = fit_kmeans(HUBERT_K, 768)
    centroids = km.cluster_centers_.astype(np.float32)
    np.save(tmp / "hubert_k1000.npy", centroids)
    assign = Assigner(centroids)

    fp32 = HubertFeatures(folder, LAYER, "cpu", bf16=False)  # fp32, layers up to LAYER only

    def forward(wave: np.ndarray) -> np.ndarray:
        return fp32.features([wave])[0]

    noise = warmup_waves(waves)
    bf16 = HubertFeatures(folder, LAYER, "cpu", bf16=True)
    extractor = [
        "--extractor",
        "hubert",
        "--checkpoint",
        str(folder),
        "--layer",
        str(LAYER),
        "--bf16",
        "--kmeans",
        str(tmp / "hubert_k1000.npy"),
    ]
    steps = {
        "a": lambda n: reference(paths, forward, km, noise),
        "b": lambda n: batched(waves, bf16, assign, BATCH, noise),
    }
    for bs in dict.fromkeys((TOKENIZE_BATCH, BATCH)):
        out = tmp / f"tok-hubert-{bs}"
        steps[f"c{bs}"] = lambda n, bs=bs, out=out: tokenize(
            root, warm, out.with_name(f"{out.name}-{n}"), extractor, bs, len(waves)
        )
    r = rounds("hubert", steps)

    log("hubert (d): the bare model's variants, interleaved group by group; agreement")
    variants = {
        "bf16": bf16,  # weights cast once, one forward pass per wave
        "bf16_pad": PaddedBatches(bf16),
        "autocast": Autocast(fp32),
        "fp32": fp32,
        "fp32_pad": PaddedBatches(fp32),
    }
    bare = {"bare": lambda n: interleaved(waves, variants, assign, BATCH, noise)}
    r["bare"] = rounds("hubert", bare, count=1)["bare"]  # after (c): shapes partly warm
    u = r["bare"]["units"]
    bf16_single = u["bf16"]
    r["agree"] = {
        "bf16": agreement(r["b"]["units"], bf16_single),
        "bf16_pad": agreement(u["bf16_pad"], bf16_single),
        "fp32_pad": agreement(u["fp32_pad"], u["fp32"]),
        "autocast": agreement(u["autocast"], bf16_single),
        "bf16_vs_fp32": agreement(bf16_single, u["fp32"]),
    }
    for bs in dict.fromkeys((TOKENIZE_BATCH, BATCH)):
        tok = tokenize_units(r[f"c{bs}"]["first"]["output"])
        r["agree"][f"tokenize{bs}"] = agreement([tok[i] for i in ids], bf16_single)
    r["gap"] = nearest_gap(fp32, waves, centroids)
    log(f"hubert (d): {r['agree']}, median nearest-centroid gap {r['gap']:.4f}")
    return r


def run_mfcc(tmp: Path, root: Path, warm: Path, paths: list[str], waves: list) -> dict:
    from speechinstruct.extractors.mfcc import MfccFeatures
    from speechinstruct.kmeans import Assigner

    km = fit_kmeans(MFCC_K, 39)
    centroids = km.cluster_centers_.astype(np.float32)
    np.save(tmp / "mfcc_k100.npy", centroids)
    mfcc = MfccFeatures()
    noise, assign = warmup_waves(waves), Assigner(centroids)
    extractor = ["--extractor", "mfcc", "--kmeans", str(tmp / "mfcc_k100.npy")]
    return rounds(
        "mfcc",
        {
            "a": lambda n: reference(paths, lambda w: mfcc.features([w])[0], km, noise),
            "b": lambda n: batched(waves, mfcc, assign, BATCH, noise),
            f"c{TOKENIZE_BATCH}": lambda n: tokenize(
                root, warm, tmp / f"tok-mfcc-{n}", extractor, TOKENIZE_BATCH, len(waves)
            ),
        },
    )


def summary(steps: dict) -> str:
    sizes = steps["batches"]
    return (
        f"model load {steps['load']:.1f} s ({steps['loads']}x), decode {steps['decode']:.1f} s, "
        f"inference {steps['infer']:.1f} s in {len(sizes)} batches of {sorted(sizes)}, "
        f"padding {steps['padding']:.0%}"
    )


def machine() -> str:
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/cpuinfo") as f:
        flags = f.read()
    bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return (
        f"{model}, {os.cpu_count()} cores ({torch.get_num_threads()} torch threads), "
        f"{'native bf16 (avx512_bf16)' if bf16 else 'no native bf16'}, "
        f"torch {torch.__version__}, Python {platform.python_version()}"
    )


def main() -> dict:
    global DEADLINE
    begin = time.perf_counter()
    DEADLINE = begin + 8 * 60
    date = subprocess.run(["date", "-u"], capture_output=True, text=True).stdout.strip()
    log(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="bench-units-") as name:
        tmp = Path(name)
        root, utts, waves, total = make_audio(tmp)
        warm = mini_corpus(root, tmp / "warm")
        paths, ids = [u.source.path for u in utts], [u.id for u in utts]
        log("matmul GFLOP/s")
        gflops = {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)}
        log(f"matmul: fp32 {gflops['fp32']:.0f}, bf16 {gflops['bf16']:.0f} GFLOP/s")
        results = {
            "hubert": run_hubert(tmp, root, warm, paths, waves, ids),
            "mfcc": run_mfcc(tmp, root, warm, paths, waves),
        }
    results.update(
        date=date,
        total=total,
        n=len(waves),
        gflops=gflops,
        minutes=(time.perf_counter() - begin) / 60,
    )
    section = report(results)
    write_section("units", section)
    print(section, flush=True)
    log(f"wrote {RESULTS} in {results['minutes']:.1f} min")
    return results


# --- RESULTS.md ---------------------------------------------------------------------------


def report(r: dict) -> str:
    total, tb, b = r["total"], TOKENIZE_BATCH, BATCH
    h, m, g = r["hubert"], r["mfcc"], r["gflops"]

    def speed(x: dict) -> float:
        return total / x["wall"]

    def cell(x: dict) -> str:
        walls = " / ".join(f"{w:.1f}" for w in x["walls"])
        others = " / ".join(f"{o:.1f}" for o in x["all_others"])
        return f"{speed(x):.2f} ({walls} s; {others})"

    def ratios(x: dict, c: str) -> str:
        return (
            f"(c)/(b) = **{speed(x[c]) / speed(x['b']):.2f}**, "
            f"(c)/(a) = **{speed(x[c]) / speed(x['a']):.2f}**"
        )

    def steps(x: dict) -> str:
        return f"wall {x['wall']:.1f} s; {summary(x['steps'])}"

    header = (
        f"| extractor | (a) one at a time, fp32, sklearn | (b) groups of {b}, bf16, Assigner "
        f"| (c) tokenize `--batch-size {tb}` | (c) tokenize `--batch-size {b}` |"
    )
    rows = [
        f"| HuBERT-base L{LAYER} (k={HUBERT_K}) | {cell(h['a'])} | {cell(h['b'])} | "
        f"{cell(h[f'c{tb}'])} | {cell(h[f'c{b}'])} |",
        f"| MFCC (k={MFCC_K}) | {cell(m['a'])} | {cell(m['b'])} | {cell(m[f'c{tb}'])} | – |",
    ]
    sec = h["bare"]["seconds"]
    bare = [
        f"| {label} | {total / sec[key]:.2f} | {sec['bf16'] / sec[key]:.2f} |"
        for label, key in (
            ("bf16, weights cast once at load, one pass per wave (now)", "bf16"),
            ("bf16 by `torch.autocast` on fp32 weights, one pass per wave (before)", "autocast"),
            (f"bf16, weights cast once, zero-padded batches of {b}, one pass each", "bf16_pad"),
            (f"fp32, one pass per wave (layers to {LAYER} only)", "fp32"),
            (f"fp32, zero-padded batches of {b}, one pass each", "fp32_pad"),
        )
    ]
    ag, ceiling = h["agree"], g["bf16"] / GFLOP_PER_AUDIO_S
    return f"""
## Units (issue: units at scale)

- Date: {r["date"]}
- Machine: {machine()}
- Reproduce: `.venv/bin/python benchmarks/run.py units` (whole run: {r["minutes"]:.1f} min)
- Audio: the sample LibriSpeech of `make_corpora(tmp, utterances={UTTERANCES})`: {r["n"]} FLAC
  utterances, sum of durations **{total:.1f} s**, the same audio for every row.
- HuBERT-base: `HubertModel(HubertConfig())`, random init (seed 0), `hidden_states[{LAYER}]`,
  saved once with `save_pretrained` for (b) and (c). Centroids: sklearn `MiniBatchKMeans`
  fitted (untimed) on random data, k={HUBERT_K} × 768-d and k={MFCC_K} × 39-d; the same
  centroids for (a), (b) and (c) (as `.npy` for tokenize).

**Audio-seconds per wall-second** (higher is better), the best of {ROUNDS} interleaved rounds
((a), (b), (c)…, then again). In brackets: each round's wall time, and the CPU cores other
processes used during each round (0.0 = quiet; on 2 cores, above ~0.2 someone else slowed
that round down; each round first waits up to 30 s for a quiet CPU). Even on a quiet CPU,
rounds differ by up to ~20% on this VM. Round 2 of (a) and (b) repeats round 1's tensor
shapes (already warm in oneDNN) while Beam reshuffles (c)'s batches, so best-of slightly
favours (a) and (b).

{header}
|---|---|---|---|---|
{chr(10).join(rows)}

(a) `soundfile` read → fp32 model up to layer {LAYER} and no further, as the reference's
fairseq `extract_features(output_layer={LAYER})` runs it (MFCC: `MfccFeatures`) →
`MiniBatchKMeans.predict` → run-length reduce, one file per call.
(b) waves decoded beforehand, `HubertFeatures(..., bf16=True).features(group)` on
length-sorted groups of {b} (layers to {LAYER} only; HuBERT-base runs each wave in its own
forward pass, so nothing is padded) + torch `Assigner`. (c) the whole
`pipelines.tokenize.run([...])` call: list, read, decode, Beam (FnApiRunner), model load,
dedup, Parquet, stats; HuBERT with `--bf16`.
Warm-up before each timing: (a), (b) one pass over {b} noise waves spread over the corpus's
length range; (c) one tokenize call on a 2-file copy of the corpus.

**Ratios.** HuBERT-base, tokenize `--batch-size {tb}` (its default): {ratios(h, f"c{tb}")};
`--batch-size {b}` (as (b)): {ratios(h, f"c{b}")}. MFCC: {ratios(m, f"c{tb}")}.

**Where tokenize's time goes** (its handler and decoder wrapped for timing, in-process;
fastest round):
- HuBERT `--batch-size {tb}`: {steps(h[f"c{tb}"])}.
- HuBERT `--batch-size {b}`: {steps(h[f"c{b}"])}.
- MFCC `--batch-size {tb}`: {steps(m[f"c{tb}"])}.

**Bare HuBERT-base model, other batch sizes and precisions** (waves in memory + `Assigner`,
length-sorted groups of {b}): one run in which the variants take turns group by group, so
drifts of the VM's speed hit all of them alike (others used {h["bare"]["others"]:.1f} cores
meanwhile); run after (c), so some shapes are already warm. (b), the same computation as the
first row, ran at {speed(h["b"]):.2f} (best of {ROUNDS} rounds).

| bare model | audio-s/s | speed vs the first row |
|---|---|---|
{chr(10).join(bare)}

**Unit agreement**, HuBERT-base (share of frames with the same unit, all {r["n"]} utterances):

| comparison | agreement |
|---|---|
| bf16: `features()` on groups of {b} (= (b)) vs one at a time | {ag["bf16"]:.2%} |
| bf16: tokenize `--batch-size {tb}` vs one at a time | {ag[f"tokenize{tb}"]:.2%} |
| bf16: tokenize `--batch-size {b}` vs one at a time | {ag[f"tokenize{b}"]:.2%} |
| bf16: zero-padded batches of {b} (before) vs one at a time | {ag["bf16_pad"]:.2%} |
| fp32: zero-padded batches of {b} vs one at a time | {ag["fp32_pad"]:.2%} |
| bf16 by `torch.autocast` (before) vs bf16 weights cast once | {ag["autocast"]:.2%} |
| bf16 vs fp32, both one at a time (precision alone) | {ag["bf16_vs_fp32"]:.2%} |

Median relative gap between the nearest and the second-nearest centroid distance (fp32
features of 8 utterances): {h["gap"]:.2%}.

**CPU ceiling.** `torch.matmul` 2048×2048, median of 8: fp32 **{g["fp32"]:.0f}** GFLOP/s,
bf16 **{g["bf16"]:.0f}** GFLOP/s. At ≈{GFLOP_PER_AUDIO_S:.0f} GFLOP per audio-second
(HuBERT-base to layer {LAYER}: conv front end ≈5, 11 transformer layers ≈8) the bf16 floor
is {GFLOP_PER_AUDIO_S / g["bf16"] * 1000:.0f} ms of compute per audio-second, a ceiling of
**{ceiling:.1f}** audio-s per wall-s; (b) runs at {speed(h["b"]) / ceiling:.0%} of it,
(c) at {speed(h[f"c{tb}"]) / ceiling:.0%}.

{interpret(r)}

{ALSO_TRIED}
"""


def interpret(r: dict) -> str:
    total, tb, b = r["total"], TOKENIZE_BATCH, BATCH
    h, m = r["hubert"], r["mfcc"]
    ag = h["agree"]

    def speed(x: dict) -> float:
        return total / x["wall"]

    def met(ok: bool) -> str:
        return "met" if ok else "**not met**"

    a, bb, c = speed(h["a"]), speed(h["b"]), speed(h[f"c{tb}"])
    ceiling = r["gflops"]["bf16"] / GFLOP_PER_AUDIO_S
    s = h[f"c{tb}"]["steps"]
    counts = Counter(s["batches"])
    sizes = ", ".join(f"{counts[k]} of {k}" for k in sorted(counts, reverse=True))
    outside = h[f"c{tb}"]["wall"] - s["infer"]
    sec = h["bare"]["seconds"]
    pad_gain = sec["bf16"] / sec["bf16_pad"]
    cast_gain = sec["autocast"] / sec["bf16"]
    bf16_gain = sec["fp32"] / sec["bf16"]
    worst = min(ag["bf16"], ag[f"tokenize{tb}"], ag[f"tokenize{b}"])
    kept = ("a", "b", f"c{tb}", f"c{b}", "bare")
    noisy = max(h[k]["others"] for k in kept)
    mfcc_outside = m[f"c{tb}"]["wall"] - m[f"c{tb}"]["steps"]["infer"]
    return (
        f"**Reading.** At HuBERT-base size, (c) ≥ 0.8×(b) is {met(c >= 0.8 * bb)} "
        f"({c / bb:.2f}×) and (c) ≥ 2×(a) is {met(c >= 2 * a)} ({c / a:.2f}×; at "
        f"`--batch-size` {b}, the same computation for HuBERT-base, {speed(h[f'c{b}']) / a:.2f}×)"
        + (
            f". (c) is the bf16 model plus listing, reading, decoding, Beam, dedup and Parquet, "
            f"so at best it matches the bare bf16 model, and that alone (table below, variants "
            f"interleaved) runs at {total / sec['bf16'] / a:.2f}×(a), {bf16_gain:.2f}× the same "
            f"model code in fp32: that is all bf16 buys on this CPU for HuBERT-base's mix of "
            f"matmuls, convolutions, norms and attention (a 2048² matmul alone: "
            f"{r['gflops']['bf16'] / r['gflops']['fp32']:.1f}×), and batching buys nothing "
            f"here (below). 2× needs {2 * a:.1f} audio-s/s end to end, "
            f"{2 * a / ceiling:.0%} of the bf16 matmul ceiling, where (b) reaches "
            f"{bb / ceiling:.0%}; only a cheaper computation (int8 weights, a distilled "
            f"model) would get there, and that changes the units. "
            if c < 2 * a
            else ". "
        )
        + f"Tokenize adds {outside:.1f} s outside inference (model load {s['load']:.1f} s, "
        f"decode {s['decode']:.1f} s, the rest Beam, dedup and Parquet), a fixed cost that "
        f"fades on a real corpus. Its batches at `--batch-size` {tb}: {sizes}; HuBERT-base "
        f"runs each wave in its own forward pass whatever the batch. The bare model, variants "
        f"interleaved: bf16 with the weights cast once at load runs {cast_gain:.2f}× as fast as "
        f"`torch.autocast` recasting the fp32 weights on every pass (same units: "
        f"{ag['autocast']:.1%}), {bf16_gain:.2f}× as fast as fp32; zero-padded batches of {b} "
        f"run at {pad_gain:.2f}× one at a time"
        + (
            ", so padding buys no speed on this CPU. "
            if pad_gain < 1.05
            else ", a speed given up for exact units. "
        )
        + f"For MFCC the features cost almost nothing and tokenize's {mfcc_outside:.1f} s of "
        f"fixed overhead dominates {total:.0f} s of audio, hence its low ratios. "
        f"Batched-vs-single agreement ≥ 99% is {met(worst >= 0.99)} (lowest {worst:.1%}: "
        f"(b) {ag['bf16']:.1%}, tokenize `--batch-size` {tb} {ag[f'tokenize{tb}']:.1%}, "
        f"{b} {ag[f'tokenize{b}']:.1%}). HuBERT-base (group-norm front end) takes no attention "
        f"mask, as fairseq trained it, so in a zero-padded batch the padding changes every "
        f"frame of the shorter waves (the first conv layer's GroupNorm statistics, "
        f"self-attention, the positional convolution): such batches, as it ran before, agree "
        f"with one at a time on only {ag['bf16_pad']:.1%} (fp32 {ag['fp32_pad']:.1%}). Random "
        f"weights and random centroids exaggerate any perturbation (bf16 vs fp32 alone agree "
        f"on {ag['bf16_vs_fp32']:.1%}; the nearest and second-nearest centroid distances differ "
        f"by a median {h['gap']:.2%}). "
        + (
            f"Other processes used up to {noisy:.1f} cores during a kept HuBERT measurement: "
            f"the machine was busy, treat those numbers as rough."
            if noisy > 0.2
            else f"The kept HuBERT measurements ran on a quiet CPU (others ≤ {noisy:.1f} cores)."
        )
    )


# Hand-measured alternatives (not re-run by this script); kept in the generated section.
ALSO_TRIED = """**Also tried** (2026-11-22, scratch measurements on HuBERT-base, random init,
while other jobs kept the machine busy, so single-thread CPU time, medians of 3, unless said):
- `torch.compile` (inductor, weight freezing, dynamic shapes) of the bf16 model: 216 s wall
  to compile on the loaded VM, then 0–13% faster than eager (3 s of audio: 281 vs 322 ms;
  7.3 s: 736 vs 741 ms), features moved by bf16 rounding (cosine ≥ 0.9998); not used.
- Norm weights in bf16 too (the whole model `.to(bfloat16)`): no faster (4 s: 341 vs
  337 ms; 12 s: 1228 vs 1180 ms) and further from fp32 (relative error 1.55% vs 1.32% with
  non-trivial norm weights); norms keep fp32 weights, which computes exactly what autocast did.
- Eager attention instead of SDPA (2 threads, wall): 0.50 vs 0.96 ms per layer at 150
  frames, but 14.5 vs 8.1 ms at 500 frames and 3× the error against fp32; SDPA kept.
  Prepacked oneDNN linear weights (private `mkldnn._linear_pointwise`): ≤ 5% at 150 frames;
  not used.
- Two processes × 1 torch thread, each extracting half the corpus (bf16, one pass per wave),
  vs one process × 2 threads: 1.15–1.3× faster in a first scratch run (2 runs each), only
  1.00–1.13× in a second (3 rounds, 24 noise waves of 1.5–10 s). End to end, tokenize with
  `--direct_running_mode=multi_processing --direct_num_workers=2` (`OMP_NUM_THREADS=1` in
  the workers, or 2) ran this corpus at 9.7–9.9 (2 × 1 thread) and 5.4 (2 × 2) audio-s/s
  against 15.8–16.4 for the default single worker, 2 rounds each: each worker starts
  Python, imports torch and transformers and loads the model (its 2-file warm-up call took
  10.4 s against 1.2–1.7 s). Two threads in one process, each running whole waves with one
  intra-op thread: 17.0–18.5 vs 15.0–18.7 audio-s/s, no gain.
- Input lengths bucketed for the convolution front end (each conv's input zero-padded at the
  end to a multiple of 1 s (first conv) or 0.1 s, the output trimmed; exact for the first
  conv), to spare oneDNN a new kernel per length: no faster when configurations take turns
  wave by wave on fresh lengths (17.6 / 17.3 / 17.3 audio-s/s). The apparent cost of new
  lengths in sequential runs was first-touch memory and the VM's drift (the same work takes
  ~5% more user time with each repeat over a minute; up to ±10% between runs seconds apart).
- Flush-to-zero for denormals (`torch.set_flush_denormal`): GELU 15% faster, end to end
  within the VM's noise; not used. An attention of bf16 matmuls and an fp32 softmax instead
  of SDPA's flash kernel: faster only below ~120 frames (0.33 vs 0.47 ms at 100, 1.43 vs
  0.81 ms at 150 frames) and 4× its error; SDPA kept.
- Fixed-size RunInference batches (`min_batch_size = max_batch_size = 16`, an earlier run,
  when HuBERT-base still ran padded batches): slower and less faithful, (c)/(b) = 0.72,
  (c)/(a) = 1.28, batched-vs-single agreement 83.5% (21% padding per batch). The pipeline
  keeps Beam's adaptive batch sizes."""


if __name__ == "__main__":
    main()

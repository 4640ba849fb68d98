"""The builder's ``tokenize`` at scale: 20,000 manifest segments of one long FLAC.

(1) One ~20 min 16 kHz FLAC of real speech (the 41 utterances of ``/work/shared/real-speech``
looped, each pass in another order and at another gain; flite TTS if that folder is missing)
and a manifest ``train.tsv`` of 20,000 segments of 1–3 s at random millisecond starts.
(2) MFCC k-means, k=50, learnt by ``pipelines.learn_kmeans`` on 200 of them.
(3) Records/s of ``pipelines.tokenize.run`` end to end (in-process FnApiRunner, in a fresh
subprocess that runs only tokenize) against the bare extractor loop (``audio.load`` of each
segment, ``UnitExtractor``, ``reduce``, one at a time, no Beam).
(4) Job-graph bytes (``tokenize.build`` + ``to_runner_api``) for 100 and 20,000 rows.
(5) Peak RSS of that tokenize subprocess for 2,000 and 20,000 records.

Run with ``.venv/bin/python benchmarks/run.py scale``; results go to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from results import machine, today, write_section

RECORDS, SMALL, GRAPH_SMALL = 20_000, 2_000, 100
AUDIO_S = 20 * 60  # at least this much audio in the long file
K, KMEANS_UTTERANCES, SEED = 50, 200, 0
REAL_SPEECH = Path("/work/shared/real-speech")
SR = 16_000
CHILD = "--tokenize-child"
MARK = "SCALE-RESULT "


def log(msg: str) -> None:
    print(f"[scale {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- the corpus ---------------------------------------------------------------------------


def speech_clips() -> tuple[list[np.ndarray], str]:
    """Real speech at 16 kHz (flite TTS when the real-speech folder is absent)."""
    files = sorted(REAL_SPEECH.glob("**/*.flac"))
    if files:
        clips = []
        for f in files:
            wave, sr = sf.read(f, dtype="float32", always_2d=True)
            if sr != SR:
                raise RuntimeError(f"{f}: {sr} Hz, expected {SR}")
            clips.append(wave.mean(axis=1))
        return clips, f"{len(files)} real utterances of `{REAL_SPEECH}`"
    import soxr

    from speechinstruct.tts import FLITE_VOICES, speak

    texts = [
        "The birch canoe slid on the smooth planks.",
        "Glue the sheet to the dark blue background.",
        "It is easy to tell the depth of a well.",
        "These days a chicken leg is a rare dish.",
        "Rice is often served in round bowls.",
    ]
    clips = []
    for v in FLITE_VOICES:
        for t in texts:
            wave, sr = speak(t, v)
            clips.append(soxr.resample(wave, sr, SR).astype(np.float32))
    return clips, f"flite TTS, {len(texts)} sentences × {len(FLITE_VOICES)} voices"


def make_long_audio(path: Path, rng: np.random.Generator) -> tuple[float, str]:
    """Clips concatenated (0.25 s gaps), pass after pass in a new order and at a new gain,
    until ``AUDIO_S``: the same speech recurs, but never as the same samples."""
    clips, what = speech_clips()
    gap = np.zeros(SR // 4, np.float32)
    parts, total, passes = [], 0, 0
    while total < AUDIO_S * SR:
        gain = rng.uniform(0.5, 1.0)
        for i in rng.permutation(len(clips)):
            parts += [clips[i] * gain, gap]
            total += len(clips[i]) + len(gap)
        passes += 1
    wave = np.clip(np.concatenate(parts), -1, 1)
    sf.write(path, wave, SR, format="FLAC", subtype="PCM_16")
    return len(wave) / SR, f"{what}, {passes} passes"


def segments(n: int, total_s: float, rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """``n`` segments ``(id, start, end)`` of 1–3 s at random millisecond positions."""
    starts = np.round(rng.uniform(0, total_s - 3.05, n), 3)
    ends = np.round(starts + rng.uniform(1.0, 3.0, n), 3)
    return [(f"seg{i:06d}", float(s), float(e)) for i, (s, e) in enumerate(zip(starts, ends))]


def write_manifest(folder: Path, audio: Path, rows: list[tuple[str, float, float]]) -> Path:
    """``folder/train.tsv`` over ``folder/audio/long.flac`` (a hard link to ``audio``)."""
    (folder / "audio").mkdir(parents=True)
    try:
        os.link(audio, folder / "audio" / "long.flac")
    except OSError:
        (folder / "audio" / "long.flac").symlink_to(audio)
    lines = ["id\tpath\ttext\tspeaker\tstart\tend"]
    lines += [
        f"{id_}\taudio/long.flac\tsegment {n}\tspk{n % 17}\t{s:.3f}\t{e:.3f}"
        for n, (id_, s, e) in enumerate(rows)
    ]
    (folder / "train.tsv").write_text("\n".join(lines) + "\n")
    return folder


# --- measurements -------------------------------------------------------------------------


def graph_bytes(folder: Path, km: str, staging: str) -> int:
    """Size of tokenize's job graph over ``folder``'s manifest, built but not run."""
    import apache_beam as beam

    from pipelines import arguments, sources, tokenize
    from pipelines.audio import AudioLimits
    from speechinstruct.extractors import ExtractorSpec

    p = beam.Pipeline(options=arguments.pipeline_options([]))
    src = sources.source("manifest", str(folder))
    extractor = {"name": "mfcc", "layer": None, "k": K, "centroids_hash": "x"}
    tokenize.build(p, src, ExtractorSpec("mfcc"), km, extractor, AudioLimits(), staging, 16)
    return p.to_runner_api().ByteSize()


def bare_loop(folder: Path, rows: list[tuple[str, float, float]], km: str) -> dict:
    """Decode each segment, extract, reduce: one at a time, no Beam."""
    from pipelines.audio import load
    from speechinstruct.extractors import ExtractorSpec, UnitExtractor
    from speechinstruct.units import reduce
    from units import measure, wait_quiet

    path = str(folder / "audio" / "long.flac")
    extract = UnitExtractor(ExtractorSpec("mfcc"), km)
    for _, s, e in rows[:20]:  # warm-up
        reduce(extract([load(path, s, e)])[0])
    wait_quiet()
    out: dict = {"samples": 0, "units": 0}
    with measure(out):
        for _, s, e in rows:
            wave = load(path, s, e)
            units, _ = reduce(extract([wave])[0])
            out["samples"] += len(wave)
            out["units"] += len(units)
    return out


def tokenize_child(folder: str, km: str, output: str) -> None:
    """In a fresh process: tokenize only; print the stats, wall time and peak RSS."""
    from pipelines import tokenize

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.perf_counter()
    stats = tokenize.run(["--corpus", "manifest", "--input", folder, "--kmeans", km,
                          "--output", output])  # fmt: skip
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(MARK + json.dumps({"stats": stats, "wall": wall, "rss_imports": before,
                             "rss_peak": peak}), flush=True)  # fmt: skip


def tokenize_subprocess(folder: Path, km: str, output: Path) -> dict:
    from units import measure, wait_quiet

    wait_quiet()
    cmd = [sys.executable, __file__, CHILD, str(folder), km, str(output)]
    out: dict = {}
    with measure(out):
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    if proc.returncode != 0:
        raise RuntimeError(f"tokenize failed ({proc.returncode}):\n{proc.stderr[-6000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith(MARK))
    return {**json.loads(line[len(MARK) :]), "process": out}


def ram() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 2**20:.1f} GiB RAM"
    return "unknown RAM"


# --- the benchmark ------------------------------------------------------------------------


def main() -> dict:
    from pipelines import learn_kmeans

    begin = time.perf_counter()
    date = today()
    rng = np.random.default_rng(SEED)
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as name:
        tmp = Path(name)
        long = tmp / "long.flac"
        audio_s, audio_what = make_long_audio(long, rng)
        rows = segments(RECORDS, audio_s, rng)
        big = write_manifest(tmp / f"m{RECORDS}", long, rows)
        small = write_manifest(tmp / f"m{SMALL}", long, rows[:SMALL])
        tiny = write_manifest(tmp / f"m{GRAPH_SMALL}", long, rows[:GRAPH_SMALL])
        seg_s = sum(e - s for _, s, e in rows)
        log(f"{audio_s / 60:.1f} min of audio ({audio_what}); {RECORDS} segments, {seg_s:.0f} s")

        km = str(tmp / "km.npy")
        t = time.perf_counter()
        learn_kmeans.run(["--corpus", "manifest", "--input", str(big), "--k", str(K),
                          "--output", km, "--max-utterances", str(KMEANS_UTTERANCES)])  # fmt: skip
        kmeans_s = time.perf_counter() - t
        log(f"learn-kmeans: {kmeans_s:.1f} s")

        graph = {n: graph_bytes(d, km, str(tmp / "stage")) for n, d in
                 ((GRAPH_SMALL, tiny), (RECORDS, big))}  # fmt: skip
        log(f"graph bytes: {graph}")

        tok = {}
        for n, folder in ((SMALL, small), (RECORDS, big)):
            log(f"tokenize {n} records (fresh subprocess)")
            tok[n] = tokenize_subprocess(folder, km, tmp / f"out{n}")
            r = tok[n]
            log(f"tokenize {n}: {r['wall']:.1f} s, {r['stats']['read'] / r['wall']:.1f} rec/s, "
                f"peak RSS {r['rss_peak'] / 1024:.0f} MiB, others "
                f"{r['process']['others']:.1f} cores; {r['stats']}")  # fmt: skip

        log(f"bare extractor loop over {RECORDS} segments")
        bare = bare_loop(big, rows, km)
        log(f"bare: {bare['wall']:.1f} s, {RECORDS / bare['wall']:.1f} rec/s, "
            f"others {bare['others']:.1f} cores")  # fmt: skip

    results = {
        "date": date,
        "audio_s": audio_s,
        "audio_what": audio_what,
        "segment_s": seg_s,
        "kmeans_s": kmeans_s,
        "graph": graph,
        "tokenize": tok,
        "bare": bare,
        "minutes": (time.perf_counter() - begin) / 60,
    }
    write_section("scale", report(results))
    log(f"done in {results['minutes']:.1f} min; wrote the scale section of RESULTS.md")
    return results


def report(r: dict) -> str:
    tok, bare, graph = r["tokenize"], r["bare"], r["graph"]
    big, small = tok[RECORDS], tok[SMALL]
    st = big["stats"]
    rate = {n: t["stats"]["read"] / t["wall"] for n, t in tok.items()}
    bare_rate = RECORDS / bare["wall"]
    mib = {n: t["rss_peak"] / 1024 for n, t in tok.items()}
    base = {n: t["rss_imports"] / 1024 for n, t in tok.items()}
    dups = st["duplicates"] or {}
    rejected = st["rejected"] or {}
    growth = (mib[RECORDS] - mib[SMALL]) / (RECORDS - SMALL) * 1024  # KiB per record
    noisy = max(t["process"]["others"] for t in tok.values())
    noisy = max(noisy, bare["others"])

    def row(label: str, value: str, note: str = "") -> str:
        return f"| {label} | {value} | {note} |"

    table = "\n".join(
        [
            "| measurement | value | notes |",
            "|---|---|---|",
            row(
                f"tokenize, {RECORDS:,} records",
                f"**{rate[RECORDS]:.1f} rec/s** ({big['wall']:.1f} s)",
                f"{rate[RECORDS] * seg_mean(r):.0f} audio-s/s; others "
                f"{big['process']['others']:.1f} cores",
            ),
            row(
                f"tokenize, {SMALL:,} records",
                f"{rate[SMALL]:.1f} rec/s ({small['wall']:.1f} s)",
                f"others {small['process']['others']:.1f} cores",
            ),
            row(
                f"bare extractor loop, {RECORDS:,} segments",
                f"**{bare_rate:.1f} rec/s** ({bare['wall']:.1f} s)",
                f"{bare['samples'] / SR / bare['wall']:.0f} audio-s/s; "
                f"{bare['cpu']:.1f} cores used; others {bare['others']:.1f}",
            ),
            row("ratio tokenize / bare", f"**{rate[RECORDS] / bare_rate:.2f}**", ""),
            row(f"job graph, {GRAPH_SMALL} rows", f"{graph[GRAPH_SMALL]:,} bytes", ""),
            row(
                f"job graph, {RECORDS:,} rows",
                f"{graph[RECORDS]:,} bytes",
                f"difference {graph[RECORDS] - graph[GRAPH_SMALL]:+,} bytes",
            ),
            row(
                f"peak RSS, tokenize {SMALL:,} records",
                f"{mib[SMALL]:.0f} MiB",
                f"{base[SMALL]:.0f} MiB after imports",
            ),
            row(
                f"peak RSS, tokenize {RECORDS:,} records",
                f"{mib[RECORDS]:.0f} MiB",
                f"{base[RECORDS]:.0f} MiB after imports; {growth:+.1f} KiB per extra record",
            ),
        ]
    )
    overhead = (big["wall"] - bare["wall"]) / RECORDS * 1000
    memory = (
        f"the launching process grew from {mib[SMALL]:.0f} to {mib[RECORDS]:.0f} MiB peak RSS "
        f"({growth:.1f} KiB per extra record): with the in-process FnApiRunner the driver is "
        f"also the worker, and the runner keeps each fused stage's output buffered in memory "
        f"(the records behind the Reshuffle and each GroupByKey), so its memory grows with the "
        f"corpus; on a distributed runner that state lives on the workers and the shuffle, and "
        f"the driver holds only the graph."
        if growth > 1.0
        else f"peak RSS barely moved ({mib[SMALL]:.0f} → {mib[RECORDS]:.0f} MiB): the "
        f"launching process does not grow with the corpus."
    )
    return f"""
## Scale (issue: builder at scale)

- Date: {r["date"]}; machine: {machine()}, {ram()}
- Reproduce: `.venv/bin/python benchmarks/run.py scale` (whole run: {r["minutes"]:.1f} min)
- Audio: one {r["audio_s"] / 60:.1f} min 16 kHz FLAC ({r["audio_what"]}; each pass in a new
  order at a new gain, 0.25 s gaps). Manifest `train.tsv`: {RECORDS:,} segments of 1–3 s at
  random millisecond starts (they overlap), {r["segment_s"]:.0f} s of audio in all; the
  {SMALL:,}- and {GRAPH_SMALL}-row manifests are its first rows.
- Units: MFCC, k = {K} learnt by `learn_kmeans` on {KMEANS_UTTERANCES} segments
  ({r["kmeans_s"]:.1f} s).
- tokenize: `pipelines.tokenize.run([...])` (defaults: `--batch-size 16`, in-process
  FnApiRunner), alone in a fresh subprocess; wall time of the call, peak RSS
  (`ru_maxrss`) of that process. {RECORDS:,} records: read {st["read"]:,}, kept
  {st["kept"]:,}, rejected {sum(rejected.values())} {rejected or ""}, duplicates
  {sum(dups.values())} {dups or ""}.
- Bare loop: `pipelines.audio.load(path, start, end)` →
  `UnitExtractor(ExtractorSpec("mfcc"), km)([wave])` → `speechinstruct.units.reduce`, one
  segment at a time in this process (after a 20-segment warm-up).
- Job graph: `tokenize.build(...)` on a new pipeline, `to_runner_api().ByteSize()`, not run.

{table}

Reading: tokenize runs at {rate[RECORDS] / bare_rate:.0%} of the bare extractor loop's
rate on {RECORDS:,} short MFCC segments, i.e. about {overhead:.1f} ms of Beam per record
(reading inside the job, Reshuffle, UniqueIds and two dedup GroupByKeys, RunInference batching,
Parquet writes, counts) on top of the {bare["wall"] / RECORDS * 1000:.1f} ms the decode +
features + assignment cost. MFCC is almost free, so this is the worst case for the overhead;
with HuBERT (tens of ms per second of audio) it would vanish into the model time. Its rate
at {SMALL:,} records, {rate[SMALL]:.1f} rec/s, against {rate[RECORDS]:.1f} at {RECORDS:,}: the
per-record cost stays flat, no superlinear step. The job graph is the same size for
{GRAPH_SMALL} and {RECORDS:,} rows ({graph[RECORDS] - graph[GRAPH_SMALL]:+,} bytes: only the
manifest's path is in it). Memory: {memory}
""" + (
        f"Other processes used up to {noisy:.1f} cores during these timings: treat the rates "
        f"as rough."
        if noisy > 0.2
        else "Other processes stayed below 0.2 cores during the timings."
    )


def seg_mean(r: dict) -> float:
    return r["segment_s"] / RECORDS


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == CHILD:
        tokenize_child(*sys.argv[2:])
    else:
        main()

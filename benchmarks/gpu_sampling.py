"""Generation throughput on a CUDA GPU against the host's CPU cores, without Spark: where the time goes, and
whether bfloat16 changes what is drawn.

Why: a Spark task samples on the CPU, 2,048 rows at a time. On a GPU batches that small are bound by kernel
launches, and the codes still come back to the host for the numpy decode, so the question is how far a
larger sub-batch (``FlatGenerator.to(device, sub_batch)``) carries the sampler, and whether the copy and the
decode then decide the speed. For a flat generator (``--model``) and, with ``--log-model``, an event-log one:

- CPU, torch threads = all cores, the default sub-batch: ``generate_chunk`` end to end (sampling and
  decode: what a Spark task runs, bar the write) and the sampler alone;
- CUDA float32 at each of ``--sizes`` sub-batches (event logs: ``--log-sizes`` subjects per batch): the
  same, and the end-to-end time split into the sampler (network and draws, synchronised), the
  device-to-host copy and the decode on the CPU (events: plus the assembly of keys and the order column);
- CUDA bfloat16 (the network's matrix products under autocast; softmax and draws in float32): the same;
- quality sanity: the total variation distance (TVD) between the code marginals, per sub-column, of
  bf16 and fp32 samples of the same model (event logs: also the events-per-subject histogram), next to
  the TVD between two independent fp32 samples of the same size, the sampling noise floor: bf16 changes
  the distribution only where its TVD clearly exceeds that floor. Samples drawn at different sub-batch
  sizes use different random streams, so they are independent; the same size and seed shares the
  uniforms, so "same stream" pairs also give the share of codes bf16 flips.

Each configuration runs once untimed first (warm-up: CUDA context, cuBLAS/cuDNN, lookup tables, allocator)
and is then timed once. It checks that the breakdown reproduces ``generate_chunk``'s output and that CUDA
sampling repeats for a seed. Without CUDA only the CPU rows run (a smoke test). Each configuration's
failure is recorded and the others go on; the JSON is rewritten after each, and ``--budget-s`` skips
what would start past that many seconds, so a run cut short still leaves its figures. Nothing here
imports Spark, MLflow, pydantic or opacus (a GPU machine has torch, numpy, pandas, pyarrow, safetensors).

    python3 benchmarks/gpu_sampling.py --model DIR [--log-model DIR] [--rows 1048576] [--subjects 262144] \
        [--cpu-rows 262144] [--cpu-subjects 16384] [--budget-s 420] [--out gpu_sampling.json]

Rows and subjects are best multiples of every sub-batch size: sampling works in whole sub-batches.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from common import RESULTS_DIR, machine, table  # noqa: E402

from spark_synth.generators.controls import Controls, plan  # noqa: E402
from spark_synth.generators.event_log import (  # noqa: E402
    EVENT_DECODE_STREAM,
    EVENT_STREAM,
    SUBJECT_DECODE_STREAM,
    SUBJECT_STREAM,
    LogGenerator,
    event_batches,
)
from spark_synth.generators.flat import FlatGenerator, _generators, torch_generator  # noqa: E402

SIZES = [2048, 16384, 65536, 262144]
LOG_SIZES = [16384, 65536, 262144]  # 2,048-subject batches step through every event position 128 times per 262k
SEED, CHUNK, WARMUP_CHUNK = 0, 0, 99
# the accelerator measured against the CPU, and its label; --dry-run runs its rows on the CPU as "dry-run" (a check
# of this script on a machine without CUDA; bf16 rows then record the refusal)
ACCELERATOR = {"device": "cuda", "label": "cuda"}


def accel(precision: str, size: int) -> str:
    return f"{ACCELERATOR['label']} {precision} {size}"


def accelerated() -> bool:
    return ACCELERATOR["device"] != "cuda" or torch.cuda.is_available()


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="flat generator directory (as `spark-synth train` writes it)")
    ap.add_argument("--log-model", help="event-log generator directory")
    ap.add_argument("--rows", type=int, default=1_048_576, help="rows of the flat chunk on the GPU")
    ap.add_argument("--cpu-rows", type=int, default=262_144, help="rows of the flat chunk on the CPU")
    ap.add_argument("--subjects", type=int, default=262_144, help="subjects of the event-log chunk on the GPU")
    ap.add_argument("--cpu-subjects", type=int, default=16_384, help="subjects of the event-log chunk on the CPU")
    ap.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="flat sub-batches measured on CUDA")
    ap.add_argument("--log-sizes", type=int, nargs="+", default=LOG_SIZES,
                    help="event-log sub-batches (= event batches) measured on CUDA")
    ap.add_argument("--no-bf16", action="store_true", help="skip the bfloat16 configurations")
    ap.add_argument("--budget-s", type=float, default=420.0, help="start no configuration after this many seconds")
    ap.add_argument("--out", default=os.path.join(RESULTS_DIR, "gpu_sampling.json"))
    ap.add_argument("--dry-run", action="store_true",
                    help="run the accelerator rows on the CPU: a check of this script where no GPU is")
    return ap.parse_args()


# ------------------------------------------------------------------------------------------ helpers


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(action: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    """Seconds of ``action`` (all device work finished), and its result."""
    sync(device)
    started = time.perf_counter()
    out = action()
    sync(device)
    return time.perf_counter() - started, out


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_mib(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**20, 1) if device.type == "cuda" else None


class Counts:
    """Code counts per sub-column (and optionally of one extra histogram): the marginals TVD compares."""

    def __init__(self, cardinalities: list[int], head: int = 0) -> None:
        self.cards, self.head = cardinalities, head
        self.all = [np.zeros(c, dtype=np.int64) for c in cardinalities]
        self.first = [np.zeros(c, dtype=np.int64) for c in cardinalities]  # the first ``head`` rows only
        self.seen = 0

    def add(self, codes: np.ndarray) -> None:
        for j, card in enumerate(self.cards):
            self.all[j] += np.bincount(codes[:, j], minlength=card)[:card]
        if self.seen < self.head:
            part = codes[: self.head - self.seen]
            for j, card in enumerate(self.cards):
                self.first[j] += np.bincount(part[:, j], minlength=card)[:card]
        self.seen += len(codes)


def tvd(a: list[np.ndarray], b: list[np.ndarray]) -> dict[str, Any]:
    """Total variation distance between two samples' marginals, per sub-column: max, mean and each."""
    each = [0.5 * float(np.abs(x / max(x.sum(), 1) - y / max(y.sum(), 1)).sum()) for x, y in zip(a, b, strict=True)]
    return {"max": round(max(each), 5), "mean": round(float(np.mean(each)), 5), "rows": [int(a[0].sum()), int(b[0].sum())],
            "per_sub_column": [round(v, 5) for v in each]}


def environment() -> dict[str, Any]:
    env: dict[str, Any] = {"torch": torch.__version__, "numpy": np.__version__, "pyarrow": pa.__version__,
                           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                           "machine": machine(), "cuda_available": torch.cuda.is_available(),
                           "float32_matmul_precision": torch.get_float32_matmul_precision(),
                           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        env |= {"cuda": torch.version.cuda, "cudnn": torch.backends.cudnn.version(),
                "device": torch.cuda.get_device_name(0), "device_memory_gib": round(props.total_memory / 2**30, 1),
                "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32}
    return env


class Budget:
    def __init__(self, seconds: float) -> None:
        self.seconds, self.started = seconds, time.perf_counter()

    def left(self) -> bool:
        return time.perf_counter() - self.started < self.seconds


def guarded(label: str, budget: Budget, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One configuration's figures, or why there are none (skipped for time, or its error)."""
    if not budget.left():
        print(f"  {label}: skipped (past --budget-s)", flush=True)
        return {"config": label, "skipped": "past --budget-s"}
    try:
        started = time.perf_counter()
        out = {"config": label, **action()}
        print(f"  {label}: done in {time.perf_counter() - started:.1f} s", flush=True)
        return out
    except Exception as exc:  # a one-shot run records the failure and carries on
        traceback.print_exc()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        return {"config": label, "error": f"{type(exc).__name__}: {exc}"[:2000]}


def configurations(sizes: list[int], bf16: bool) -> list[tuple[str, str, int | None, bool]]:
    """(label, device, sub-batch, bf16): the CPU default first, then CUDA fp32 by size, then bf16."""
    runs: list[tuple[str, str, int | None, bool]] = [("cpu fp32", "cpu", None, False)]
    if accelerated():
        runs += [(accel("fp32", s), ACCELERATOR["device"], s, False) for s in sizes]
        if bf16:
            runs += [(accel("bf16", s), ACCELERATOR["device"], s, True) for s in sizes]
    return runs


# ------------------------------------------------------------------------------------------ flat tables


def measure_flat(gen: FlatGenerator, device: str, sub_batch: int | None, bf16: bool, rows: int, head: int,
                 keep: dict[str, Any], label: str) -> dict[str, Any]:
    gen.to(device, sub_batch, bf16)
    dev, size = gen.device, gen.sub_batch
    reset_peak(dev)
    gen.generate_chunk(SEED, WARMUP_CHUNK, min(rows, size), 0)  # warm-up: tables, kernels, allocator
    seconds, chunk = timed(lambda: gen.generate_chunk(SEED, CHUNK, rows, 0), dev)
    if chunk.num_rows != rows:
        raise RuntimeError(f"generate_chunk gave {chunk.num_rows} rows, not {rows}")

    # the same chunk again, stage by stage (same random streams, so the same rows)
    steps = plan(gen.codec, Controls())
    torch_rng, numpy_rng = _generators(SEED, CHUNK, dev)
    counts = Counts(gen.model_config.cardinalities, head)
    stages = dict.fromkeys(("sampler", "copy", "decode"), 0.0)
    decoded, codes_kept = [], []
    for start in range(0, rows, size):
        t0 = time.perf_counter()
        with gen.precision():
            codes = gen.model.sample(size, torch_rng, column_order=steps.order, tables=gen.tables, blind=steps.blind)
        sync(dev)
        t1 = time.perf_counter()
        host = codes.cpu().numpy()
        t2 = time.perf_counter()
        batch = gen.codec.decode(host, numpy_rng, np.arange(start, start + size, dtype=np.int64))
        t3 = time.perf_counter()
        stages["sampler"] += t1 - t0
        stages["copy"] += t2 - t1
        stages["decode"] += t3 - t2
        decoded.append(batch.slice(0, min(size, rows - start)))
        counts.add(host[: rows - start])
        if label in keep:
            codes_kept.append(host[: rows - start].astype(np.int16))
    if label in keep:
        keep[label] = np.concatenate(codes_kept)
    sampled = math.ceil(rows / size) * size
    same = pa.Table.from_batches(decoded).combine_chunks().equals(pa.Table.from_batches([chunk]).combine_chunks())
    total = sum(stages.values())
    return {"device": str(dev), "bf16": bf16, "sub_batch": size, "rows": rows, "rows_sampled": sampled,
            "end_to_end_s": round(seconds, 4), "end_to_end_rows_per_s": rows / seconds,
            "sampler_s": round(stages["sampler"], 4), "sampler_rows_per_s": sampled / stages["sampler"],
            "copy_s": round(stages["copy"], 4), "decode_s": round(stages["decode"], 4),
            "shares": {k: round(v / total, 4) for k, v in stages.items()},
            "breakdown_reproduces_chunk": bool(same), "peak_gpu_mib": peak_mib(dev), "_counts": counts}


def flat_repeatable(gen: FlatGenerator, size: int) -> bool:
    """Two CUDA draws from one seed give the same codes."""
    gen.to(ACCELERATOR["device"], size)
    a = gen.model.sample(size, torch_generator(123, gen.device), tables=gen.tables).cpu()
    b = gen.model.sample(size, torch_generator(123, gen.device), tables=gen.tables).cpu()
    return bool(torch.equal(a, b))


def flat_section(args: argparse.Namespace, budget: Budget, save: Callable[[], None], section: dict[str, Any]) -> None:
    gen = FlatGenerator.load(args.model)
    section |= {"model": os.path.abspath(args.model), "sub_columns": gen.model.n_sub,
                "hidden": gen.model_config.hidden, "codes": sum(gen.model_config.cardinalities), "results": []}
    sizes = sorted(args.sizes)
    same_stream = sizes[-2] if len(sizes) > 1 else sizes[-1]  # fp32 and bf16 codes kept here, to compare row by row
    keep: dict[str, Any] = {accel("fp32", same_stream): None, accel("bf16", same_stream): None}
    counts: dict[str, Counts] = {}
    for label, device, size, bf16 in configurations(sizes, not args.no_bf16) + extra_cpu():
        rows = args.cpu_rows if device == "cpu" else args.rows
        out = guarded(label, budget, lambda d=device, s=size, b=bf16, r=rows, lab=label:
                      measure_flat(gen, d, s, b, r, args.cpu_rows, keep, lab))
        if "_counts" in out:
            counts[label] = out.pop("_counts")
        section["results"].append(out)
        save()
    add_ratios(section["results"], "end_to_end_rows_per_s")
    section["quality"] = quality(counts, keep, sizes, same_stream)
    if accelerated():
        section["cuda_repeatable"] = guarded("cuda repeatability", budget,
                                             lambda: {"same_codes": flat_repeatable(gen, sizes[-1])})
    save()


def extra_cpu() -> list[tuple[str, str, int | None, bool]]:
    """The CPU with a large sub-batch too (last, if time is left): how much of the GPU's gain batching alone gives."""
    return [("cpu fp32 65536", "cpu", 65536, False)]


def quality(counts: dict[str, Counts], keep: dict[str, Any], sizes: list[int], same_stream: int) -> dict[str, Any]:
    """bf16 vs fp32 vs the noise floor, CPU vs CUDA; each a TVD of marginals (see the docstring)."""
    out: dict[str, Any] = {}
    if len(sizes) < 2:
        return {"note": "needs two sub-batch sizes (independent streams)"}
    a, b = accel("fp32", sizes[-2]), accel("fp32", sizes[-1])
    pairs = {"fp32 vs fp32, independent (noise floor)": (a, b),
             "bf16 vs fp32, independent": (a, accel("bf16", sizes[-1])),
             "bf16 vs fp32, same stream": (a, accel("bf16", sizes[-2])),
             "bf16 vs bf16, independent (noise floor under bf16)": (accel("bf16", sizes[-2]), accel("bf16", sizes[-1]))}
    for name, (x, y) in pairs.items():
        if x in counts and y in counts:
            out[name] = tvd(counts[x].all, counts[y].all)
    if "cpu fp32" in counts and a in counts and b in counts:  # at the CPU's sample size
        out["accelerator fp32 vs cpu fp32, first cpu rows"] = tvd(counts["cpu fp32"].first, counts[a].first)
        out["accelerator fp32 vs itself, first cpu rows (noise floor)"] = tvd(counts[b].first, counts[a].first)
    fp32, bf16 = keep[accel("fp32", same_stream)], keep[accel("bf16", same_stream)]
    if isinstance(fp32, np.ndarray) and isinstance(bf16, np.ndarray) and fp32.shape == bf16.shape:
        out["bf16 same stream: share of codes changed"] = {
            "per_sub_column": [round(float(v), 5) for v in (fp32 != bf16).mean(axis=0)],
            "rows_with_any_change": round(float((fp32 != bf16).any(axis=1).mean()), 5)}
    return out


def add_ratios(results: list[dict[str, Any]], key: str) -> None:
    base = next((r[key] for r in results if r.get("config") == "cpu fp32" and key in r), None)
    for r in results:
        if base and key in r:
            r["vs_cpu"] = round(r[key] / base, 2)


# ------------------------------------------------------------------------------------------ event logs


def measure_log(lg: LogGenerator, device: str, sub_batch: int | None, bf16: bool, subjects: int,
                head: int) -> dict[str, Any]:
    lg.to(device, sub_batch, None, bf16)
    dev = lg.device
    reset_peak(dev)
    warm = min(subjects, lg.sub_batch)
    lg.generate_subjects_chunk(SEED, WARMUP_CHUNK, warm, 0)
    lg.generate_events_chunk(SEED, WARMUP_CHUNK, warm, 0)
    subject_s, subject_table = timed(lambda: lg.generate_subjects_chunk(SEED, CHUNK, subjects, 0), dev)
    event_s, event_table = timed(lambda: lg.generate_events_chunk(SEED, CHUNK, subjects, 0), dev)

    # the same chunk stage by stage (the events job's own subject replay is counted once, as "subject sampling")
    stages = dict.fromkeys(("subject sampling", "event sampling", "copy", "subject decode", "event decode",
                            "event assembly"), 0.0)
    streams = lg._streams(SEED, CHUNK)
    t0 = time.perf_counter()
    drawn = lg._subject_codes(streams[SUBJECT_STREAM], subjects)
    sync(dev)
    t1 = time.perf_counter()
    host = [c.cpu().numpy() for c in drawn]
    t2 = time.perf_counter()
    decode_rng = np.random.default_rng(streams[SUBJECT_DECODE_STREAM])
    for i, codes in enumerate(host):
        lg.subjects.codec.decode(codes, decode_rng, np.arange(i * lg.sub_batch, i * lg.sub_batch + len(codes)))
    t3 = time.perf_counter()
    stages["subject sampling"], stages["copy"], stages["subject decode"] = t1 - t0, t2 - t1, t3 - t2

    event_rng = torch_generator(int(streams[EVENT_STREAM].generate_state(1, dtype=np.uint64)[0]), dev)
    decode_rng = np.random.default_rng(streams[EVENT_DECODE_STREAM])
    max_length = lg.sequence.max_length
    counts = Counts(lg.model_config.events.cardinalities, head)
    lengths = np.zeros(max_length + 1, dtype=np.int64)
    emitted = sampled = 0
    for start, subject_codes in event_batches(drawn, lg.sub_batch, lg.event_batch):
        t0 = time.perf_counter()
        with lg.precision():
            out = lg.model.sample(subject_codes, event_rng, lg.tables, lg.pins_first, lg.pins_later)
        sync(dev)
        t1 = time.perf_counter()
        codes, owner, step = (t.cpu().numpy() for t in out)
        t2 = time.perf_counter()
        decoded = lg.event_codec.decode(codes, decode_rng, emitted + np.arange(len(codes), dtype=np.int64))
        t3 = time.perf_counter()
        inside = owner < subjects - start
        batch = lg._assemble(decoded, start + owner, step == 0).filter(pa.array(inside))
        t4 = time.perf_counter()
        stages["event sampling"] += t1 - t0
        stages["copy"] += t2 - t1
        stages["event decode"] += t3 - t2
        stages["event assembly"] += t4 - t3
        emitted += batch.num_rows
        sampled += len(codes)
        counts.add(codes[inside])
        lengths += np.bincount(np.bincount(owner[inside], minlength=min(len(subject_codes), subjects - start)),
                               minlength=max_length + 1)[: max_length + 1]
    total = sum(stages.values())
    seconds = subject_s + event_s
    events = event_table.num_rows
    return {"device": str(dev), "bf16": bf16, "sub_batch": lg.sub_batch, "event_batch": lg.event_batch,
            "subjects": subjects, "events": events, "events_sampled": sampled,
            "subjects_job_s": round(subject_s, 4), "events_job_s": round(event_s, 4),
            "subjects_per_s": subjects / seconds, "events_per_s": events / seconds,
            "events_job_events_per_s": events / event_s,
            "sampler_s": round(stages["subject sampling"] + stages["event sampling"], 4),
            "sampler_events_per_s": sampled / stages["event sampling"],
            "stages_s": {k: round(v, 4) for k, v in stages.items()},
            "shares": {k: round(v / total, 4) for k, v in stages.items()},
            "breakdown_reproduces_chunk": bool(emitted == events and subject_table.num_rows == subjects),
            "peak_gpu_mib": peak_mib(dev), "_counts": (counts, lengths)}


def log_repeatable(lg: LogGenerator, size: int) -> bool:
    lg.to(ACCELERATOR["device"], size)
    drawn = lg._subject_codes(lg._streams(SEED, CHUNK)[SUBJECT_STREAM], size)[0]
    a = [t.cpu() for t in lg.model.sample(drawn, torch_generator(7, lg.device), lg.tables, lg.pins_first, lg.pins_later)]
    b = [t.cpu() for t in lg.model.sample(drawn, torch_generator(7, lg.device), lg.tables, lg.pins_first, lg.pins_later)]
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def log_section(args: argparse.Namespace, budget: Budget, save: Callable[[], None], section: dict[str, Any]) -> None:
    lg = LogGenerator.load(args.log_model)
    section |= {"model": os.path.abspath(args.log_model), "max_length": lg.sequence.max_length,
                "event_sub_columns": lg.model.events.n_sub, "hidden": lg.model_config.events.hidden, "results": []}
    sizes = sorted(args.log_sizes)
    counts: dict[str, tuple[Counts, np.ndarray]] = {}
    for label, device, size, bf16 in configurations(sizes, not args.no_bf16):
        subjects = args.cpu_subjects if device == "cpu" else args.subjects
        out = guarded(label, budget, lambda d=device, s=size, b=bf16, n=subjects:
                      measure_log(lg, d, s, b, n, args.cpu_subjects))
        if "_counts" in out:
            counts[label] = out.pop("_counts")
        section["results"].append(out)
        save()
    add_ratios(section["results"], "events_per_s")
    section["quality"] = {}
    if len(sizes) >= 2:
        a, b = accel("fp32", sizes[-2]), accel("fp32", sizes[-1])
        pairs = {"fp32 vs fp32, independent (noise floor)": (a, b),
                 "bf16 vs fp32, independent": (a, accel("bf16", sizes[-1])),
                 "bf16 vs fp32, same stream": (a, accel("bf16", sizes[-2]))}
        for name, (x, y) in pairs.items():
            if x in counts and y in counts:
                section["quality"][name] = {"event_codes": tvd(counts[x][0].all, counts[y][0].all),
                                            "events_per_subject": tvd([counts[x][1]], [counts[y][1]])}
    if accelerated():
        section["cuda_repeatable"] = guarded("cuda repeatability (events)", budget,
                                             lambda: {"same_codes": log_repeatable(lg, sizes[0])})
    save()


# ------------------------------------------------------------------------------------------ report


def pct(shares: dict[str, float], *keys: str) -> str:
    return f"{100 * sum(shares.get(k, 0.0) for k in keys):.0f}%"


def print_report(result: dict[str, Any]) -> None:
    env = result["environment"]
    print(f"\ntorch {env['torch']}, {env['cpu_count']} CPUs ({env['machine']['cpu']}), "
          f"{env.get('device', 'no CUDA device')}")
    flat = result.get("flat") or {}
    if flat.get("results"):
        print(f"\nflat generator {flat['model']} ({flat['sub_columns']} sub-columns, hidden {flat['hidden']})")
        rows = []
        for r in flat["results"]:
            if "end_to_end_rows_per_s" not in r:
                rows.append([r["config"], None, None, None, None, None, r.get("skipped") or r.get("error", "")[:60]])
                continue
            s = r["shares"]
            rows.append([r["config"], r["sub_batch"], r["end_to_end_rows_per_s"], r.get("vs_cpu"),
                         r["sampler_rows_per_s"], f"{pct(s, 'sampler')} / {pct(s, 'copy')} / {pct(s, 'decode')}",
                         r["peak_gpu_mib"]])
        print(table(["config", "sub-batch", "rows/s end to end", "vs cpu", "rows/s sampler",
                     "sampler / copy / decode", "peak GPU MiB"], rows))
    log = result.get("log") or {}
    if log.get("results"):
        print(f"\nevent-log generator {log['model']} (max length {log['max_length']}, "
              f"{log['event_sub_columns']} event sub-columns)")
        rows = []
        for r in log["results"]:
            if "events_per_s" not in r:
                rows.append([r["config"], None, None, None, None, None, None, r.get("skipped") or r.get("error", "")[:60]])
                continue
            s = r["shares"]
            rows.append([r["config"], r["sub_batch"], r["subjects_per_s"], r["events_per_s"], r.get("vs_cpu"),
                         r["sampler_events_per_s"],
                         f"{pct(s, 'subject sampling', 'event sampling')} / {pct(s, 'copy')} / "
                         f"{pct(s, 'subject decode', 'event decode', 'event assembly')}", r["peak_gpu_mib"]])
        print(table(["config", "sub-batch", "subjects/s", "events/s", "vs cpu", "events/s sampler",
                     "sampler / copy / decode+assembly", "peak GPU MiB"], rows))
    for name, section in (("flat", flat), ("event log", log)):
        for pair, figures in (section.get("quality") or {}).items():
            if "max" in figures:
                print(f"{name} TVD {pair}: max {figures['max']}, mean {figures['mean']} (rows {figures['rows']})")
            elif "event_codes" in figures:
                e, n = figures["event_codes"], figures["events_per_subject"]
                print(f"{name} TVD {pair}: event codes max {e['max']} mean {e['mean']}; events per subject {n['max']}")
            elif "rows_with_any_change" in figures:
                print(f"{name} {pair}: rows with any change {figures['rows_with_any_change']}")
        if "cuda_repeatable" in section:
            repeat = section["cuda_repeatable"]
            print(f"{name}: CUDA sampling repeats for a seed: {repeat.get('same_codes', repeat.get('error'))}")


def main() -> None:
    args = parse_args()
    if args.dry_run:
        ACCELERATOR.update(device="cpu", label="dry-run")
    torch.set_num_threads(os.cpu_count() or 1)
    budget = Budget(args.budget_s)
    result: dict[str, Any] = {"benchmark": "gpu_sampling", "environment": environment(), "args": vars(args),
                              "flat": {}, "log": {}}

    def save() -> None:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as handle:
            json.dump(result, handle, indent=1, default=float)

    print("flat generator:", flush=True)
    flat_section(args, budget, save, result["flat"])
    if args.log_model:
        print("event-log generator:", flush=True)
        log_section(args, budget, save, result["log"])
    result["seconds"] = round(time.perf_counter() - budget.started, 1)
    save()
    print_report(result)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

"""Sequence-length scaling of the LaCT ASR encoder against the full-attention baseline (CPU).

One LaCT series per window size (--windows, default 64 and 2048: the speech default and the
LLM recipe's window), each point of each model in its own process; the baseline has no window.

Offline: forward + backward time and peak memory of `build_model(ASR_MODELS, "lact"|"baseline")`
(same width/depth, parameter counts within 5%; the baseline's attention is PyTorch's fused
scaled_dot_product_attention) at encoder lengths T (input = 4*T log-mel frames, 4x conv
subsampling), one batch element, training mode, loss = mean(logits^2).
Streaming: bytes of the state a stream carries after L tokens — LaCTState of the block-causal
LaCT ASR model (`streaming_inference`) and of the LaCT generator (`step`) against the KV cache of
the full-attention generator baseline (`step`); the baseline ASR encoder is bidirectional and
has no streaming mode.

Method (written into the JSON):
- every offline point runs in a fresh subprocess (`--worker`), so no allocator cache or peak
  from another point leaks in; a tiny warm-up forward/backward (64 encoder frames) and one
  call of torch.utils.checkpoint (its first call imports torch._dynamo) run first so lazy
  imports and first-call setup are not timed; 1 intra-op thread (the 2-core machine is shared, and OpenMP
  threads that spin under oversubscription made 2-thread timings 10-30x noisier here);
- peak memory = VmHWM after the run - VmRSS before it, with the high-water mark reset just
  before the run (`echo 5 > /proc/self/clear_refs`); this is whole-process RSS, so it includes
  activations, gradients and allocator slack. Also reported: bytes autograd saved for the
  backward (saved_tensors_hooks, deduplicated by storage), a noise-free activation measure;
- time: the same run (cold) and, for points predicted under --repeat-below seconds, 2 more
  runs; `time_s` is the median;
- with --processes N every point runs in N fresh processes and each figure is the median over
  them (a single process's peak RSS moves by several percent); --preload swaps glibc malloc
  for another allocator in every worker, to tell live memory from allocator slack;
- load average before/after every point is recorded (other engineers share the machine);
- a point predicted (quadratic extrapolation for the baseline, linear for LaCT, from the
  previous length) to take longer than --max-point-seconds is skipped and marked so.

Usage:
    .venv/bin/python bench/sequence_scaling.py                 # full run, ~15-25 min on 2 cores
    .venv/bin/python bench/sequence_scaling.py --lengths 512 1024 --stream-tokens 2048  # quick
    .venv/bin/python bench/sequence_scaling.py --lengths 16384 --threads 2 --stream-tokens 0 \
        --processes 3       # the 16k targets (each point in 3 processes, medians)
    ... --preload /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4   # another malloc
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_LENGTHS = [512, 1024, 2048, 4096, 8192, 16384, 32768]
RESULTS = REPO / "bench" / "results"


# ---------------------------------------------------------------------------- memory probes
def _proc_status_kib(key: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class SavedTensorBytes:
    """Bytes of distinct storages autograd keeps for the backward pass."""

    def __init__(self):
        self.storages: dict[int, int] = {}

    def pack(self, t):
        s = t.untyped_storage()
        self.storages[s.data_ptr()] = s.nbytes()
        return t

    @property
    def total(self) -> int:
        return sum(self.storages.values())


# ---------------------------------------------------------------------------- model config
def bench_config(config_path: str | None, window: int | None = None):
    from models import LaCTAudioConfig
    if config_path:
        cfg = LaCTAudioConfig.from_yaml(config_path)
    else:
        cfg = LaCTAudioConfig()
    cfg.dropout = 0.0            # deterministic work; dropout is not what is measured
    cfg.gradient_checkpointing = False
    if window is not None:
        cfg.window_size = window
    return cfg


def series_names(windows: list[int]) -> list[str]:
    """'baseline' and one LaCT series per window ('lact@64', ...)."""
    return ["baseline"] + [f"lact@{w}" for w in windows]


def split_series(series: str) -> tuple[str, int | None]:
    arch, _, window = series.partition("@")
    return arch, (int(window) if window else None)


# ---------------------------------------------------------------------------- worker: one point
def run_point(series: str, length: int, runs: int, config_path: str | None, threads: int) -> dict:
    import torch
    import torch.utils.checkpoint
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    import kernels
    from models import ASR_MODELS, build_model, count_parameters

    arch, window = split_series(series)
    cfg = bench_config(config_path, window)
    model = build_model(ASR_MODELS, arch, cfg)
    model.train()
    # Warm-up on a tiny input: lazy imports and first-call setup are not what is measured. Tiny,
    # so that the memory it leaves cached does not hide part of the run's peak. Long inputs go
    # through torch.utils.checkpoint, whose first call imports torch._dynamo (~3 s): warmed here.
    torch.utils.checkpoint.checkpoint(torch.sin, torch.zeros(1, requires_grad=True), use_reentrant=False)
    warm, _ = model(torch.randn(1, 256, cfg.mel_bins))
    warm.float().square().mean().backward()
    del warm

    features = torch.randn(1, 4 * length, cfg.mel_bins)
    lengths = torch.tensor([4 * length])

    results = []
    mem = {}
    for run in range(runs):
        model.zero_grad(set_to_none=True)
        gc.collect()
        saved = SavedTensorBytes()
        rss_before = _proc_status_kib("VmRSS")
        hwm_reset = _reset_peak_rss() if run == 0 else False
        ru_before = _ru_maxrss_kib()
        c0, t0 = time.process_time(), time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(saved.pack, lambda t: t):
            logits, out_lengths = model(features, lengths)
            loss = logits.float().square().mean()
        c1, t1 = time.process_time(), time.perf_counter()
        loss.backward()
        c2, t2 = time.process_time(), time.perf_counter()
        if run == 0:
            if hwm_reset:
                peak = _proc_status_kib("VmHWM") - rss_before
                method = "VmHWM after - VmRSS before (peak reset via /proc/self/clear_refs)"
            else:
                peak = _ru_maxrss_kib() - ru_before
                method = "ru_maxrss delta (could not reset the peak: lower bound)"
            mem = {"peak_rss_delta_mib": peak / 1024, "rss_method": method,
                   "autograd_saved_mib": saved.total / 2 ** 20}
            assert int(out_lengths[0]) == length and logits.shape[1] == length
        results.append({"forward_s": t1 - t0, "backward_s": t2 - t1, "total_s": t2 - t0,
                        "cpu_forward_s": c1 - c0, "cpu_backward_s": c2 - c1, "cpu_total_s": c2 - c0})
        del logits, loss
    return {
        "architecture": arch,
        "series": series,
        "window_size": cfg.window_size,
        "encoder_frames": length,
        "input_mel_frames": 4 * length,
        "parameters": count_parameters(model),
        "kernel_backend": kernels.selected_backend(features),
        "code": code_fingerprint(),
        "runs": results,
        "time_s": statistics.median(r["total_s"] for r in results),
        "forward_s": statistics.median(r["forward_s"] for r in results),
        "backward_s": statistics.median(r["backward_s"] for r in results),
        "cpu_time_s": statistics.median(r["cpu_total_s"] for r in results),
        **mem,
    }


def code_fingerprint() -> dict:
    """Which models/ and kernels/ sources were measured (the tree may hold uncommitted work)."""
    import hashlib
    digest = hashlib.sha256()
    for path in sorted([*(REPO / "models").glob("*.py"), *(REPO / "kernels").glob("*.py")]):
        digest.update(path.name.encode() + path.read_bytes())
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return {"sources_sha256": digest.hexdigest()[:16], "git_head": head.stdout.strip() or None}


def _ru_maxrss_kib() -> int:
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ---------------------------------------------------------------------------- streaming
def _state_bytes(obj) -> int:
    import torch
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_state_bytes(v) for v in obj)
    if hasattr(obj, "num_bytes"):
        return obj.num_bytes()
    return 0


def run_streaming(total_tokens: int, piece_tokens: int, config_path: str | None) -> dict:
    import torch
    torch.set_num_threads(1)
    torch.manual_seed(0)
    from models import ASR_MODELS, GENERATION_MODELS, build_model

    cfg = bench_config(config_path)
    out = {"total_tokens": total_tokens, "piece_tokens": piece_tokens}

    # LaCT ASR, block-causal, fed mel frames through streaming_inference.
    cfg.lact_causal = True
    asr = build_model(ASR_MODELS, "lact", cfg).eval()
    state, rows, pos = None, [], 0
    with torch.no_grad():
        while pos < total_tokens:
            t0 = time.perf_counter()
            _, state = asr.streaming_inference(torch.randn(1, 4 * piece_tokens, cfg.mel_bins), state)
            pos = state.position
            rows.append({"tokens": pos, "state_bytes": state.num_bytes(),
                         "piece_s": time.perf_counter() - t0})
    out["lact_asr_streaming_inference"] = rows

    # Generators: LaCT (LaCTState) against full attention (growing KV cache), same config.
    for arch in ("lact", "baseline"):
        gen = build_model(GENERATION_MODELS, arch, cfg).eval()
        state, rows, pos = None, [], 0
        with torch.no_grad():
            while pos < total_tokens:
                tokens = torch.randint(0, cfg.audio_vocab_size, (1, piece_tokens))
                t0 = time.perf_counter()
                _, state = gen.step(tokens, state)
                pos += piece_tokens
                rows.append({"tokens": pos, "state_bytes": _state_bytes(state),
                             "piece_s": time.perf_counter() - t0})
        out[f"{arch}_generator_step"] = rows
    return out


# ---------------------------------------------------------------------------- driver
def _spawn(args: list[str], timeout: float, env: dict | None = None) -> dict:
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=REPO, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


POINT_FIGURES = ("time_s", "forward_s", "backward_s", "cpu_time_s", "peak_rss_delta_mib", "autograd_saved_mib")


def _measure(args, series: str, length: int, runs: int, timeout: float) -> dict:
    """One point in --processes fresh workers; its figures are their medians (peak RSS, taken
    once per process, moves by several percent from one process to the next)."""
    cmd = (["--worker", series, str(length), str(runs), "--threads", str(args.threads)]
           + (["--config", args.config] if args.config else []))
    env = dict(os.environ, LD_PRELOAD=args.preload) if args.preload else None
    workers = [_spawn(cmd, timeout, env) for _ in range(args.processes)]
    point = dict(workers[0])
    if len(workers) > 1:
        point.update({key: statistics.median(w[key] for w in workers) for key in POINT_FIGURES})
        point["runs"] = [run for w in workers for run in w["runs"]]
        point["per_process"] = [{key: w[key] for key in POINT_FIGURES} for w in workers]
    return point


def _predict(prev: dict | None, arch: str, length: int) -> float | None:
    if prev is None:
        return None
    ratio = length / prev["encoder_frames"]
    return prev["time_s"] * (ratio ** 2 if arch == "baseline" else ratio)


def crossover(points: dict[str, dict[int, dict]], key: str = "time_s", lact: str = "lact") -> dict:
    """Where a LaCT series' time curve crosses the baseline's (log-log interpolation)."""
    common = sorted(set(points[lact]) & set(points["baseline"]))
    diffs = [(t, math.log(points[lact][t][key] / points["baseline"][t][key])) for t in common]
    for (t0, d0), (t1, d1) in zip(diffs, diffs[1:]):
        if d0 >= 0 > d1:
            x = math.log(t0) + (math.log(t1) - math.log(t0)) * d0 / (d0 - d1)
            return {"encoder_frames": round(math.exp(x)), "between": [t0, t1],
                    "note": "first length where LaCT is faster (interpolated in log-log)"}
    if diffs and diffs[0][1] < 0:
        return {"encoder_frames": None, "note": f"LaCT already faster at the smallest length {diffs[0][0]}"}
    return {"encoder_frames": None, "note": "LaCT never faster in the measured range"}


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(17, 5))
    colors = iter(["tab:blue", "tab:green", "tab:purple", "tab:orange"])
    styles = {s: ((next(colors), f"LaCT encoder, window {s.split('@')[1]}") if s != "baseline"
                  else ("tab:red", "full-attention baseline (SDPA)"))
              for s in dict.fromkeys(p["series"] for p in result["points"])}
    for series, (color, label) in styles.items():
        pts = [p for p in result["points"] if p["series"] == series and p.get("time_s") is not None]
        xs = [p["encoder_frames"] for p in pts]
        axes[0].plot(xs, [p["time_s"] for p in pts], "o-", color=color, label=f"{label}: wall")
        axes[0].plot(xs, [p["cpu_time_s"] for p in pts], "s:", color=color, alpha=0.6, label=f"{label}: CPU time")
        axes[1].plot(xs, [p["peak_rss_delta_mib"] for p in pts], "o-", color=color, label=f"{label}: peak RSS")
        axes[1].plot(xs, [p["autograd_saved_mib"] for p in pts], "s--", color=color, alpha=0.6,
                     label=f"{label}: autograd saved")
    for series, cross in result["crossover"].items():
        if cross.get("encoder_frames"):
            axes[0].axvline(cross["encoder_frames"], color="gray", ls=":", label=f"{series} crossover")
    threads = result["machine"]["intra_op_threads"]
    for ax, title, ylabel in ((axes[0], f"forward+backward time (CPU, {threads} thread(s))", "seconds"),
                              (axes[1], "peak memory of forward+backward", "MiB")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("encoder frames (after 4x subsampling)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    stream = result.get("streaming")
    if stream:
        for key, color, label in (("lact_asr_streaming_inference", "tab:cyan", "LaCT ASR LaCTState"),
                                  ("lact_generator_step", "tab:blue", "LaCT generator LaCTState"),
                                  ("baseline_generator_step", "tab:red", "baseline generator KV cache")):
            rows = stream[key]
            axes[2].plot([r["tokens"] for r in rows], [r["state_bytes"] / 2 ** 20 for r in rows],
                         "o-", color=color, label=label, ms=3)
        axes[2].set_xlabel("stream position (tokens)")
        axes[2].set_ylabel("MiB")
        axes[2].set_title("streaming state size")
        axes[2].grid(True, alpha=0.3)
        axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=DEFAULT_LENGTHS)
    ap.add_argument("--windows", type=int, nargs="+", default=[64, 2048],
                    help="LaCT window sizes, one LaCT series each (the baseline has no window)")
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads of every point")
    ap.add_argument("--config", default=None, help="model YAML (default: LaCTAudioConfig defaults)")
    ap.add_argument("--max-point-seconds", type=float, default=300.0)
    ap.add_argument("--repeat-below", type=float, default=15.0,
                    help="points predicted faster than this get 3 runs (median), others 1")
    ap.add_argument("--processes", type=int, default=1,
                    help="fresh worker processes per point; figures are their medians")
    ap.add_argument("--preload", default=None,
                    help="a malloc library LD_PRELOADed into every point's worker "
                         "(e.g. /usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4); default glibc")
    ap.add_argument("--stream-tokens", type=int, default=16384)
    ap.add_argument("--stream-piece", type=int, default=1024)
    ap.add_argument("--output", default=str(RESULTS / "sequence_scaling.json"))
    ap.add_argument("--plot", default=str(RESULTS / "sequence_scaling.png"))
    ap.add_argument("--worker", nargs=3, metavar=("SERIES", "LENGTH", "RUNS"), help=argparse.SUPPRESS)
    ap.add_argument("--stream-worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.processes < 1:
        ap.error("--processes must be at least 1")
    if args.preload and not Path(args.preload).is_file():
        ap.error(f"--preload {args.preload}: no such file")

    if args.worker:
        series, length, runs = args.worker
        print(json.dumps(run_point(series, int(length), int(runs), args.config, args.threads)))
        return 0
    if args.stream_worker:
        print(json.dumps(run_streaming(args.stream_tokens, args.stream_piece, args.config)))
        return 0

    import torch
    from dataclasses import asdict
    cfg = bench_config(args.config)
    started = time.time()
    names = series_names(args.windows)
    points, by_arch = [], {name: {} for name in names}
    prev = {name: None for name in names}
    for length in sorted(args.lengths):
        for arch in names:
            predicted = _predict(prev[arch], split_series(arch)[0], length)
            load_before = os.getloadavg()
            if predicted is not None and predicted > args.max_point_seconds:
                point = {"architecture": split_series(arch)[0], "series": arch, "encoder_frames": length, "time_s": None,
                         "skipped": f"predicted {predicted:.0f} s > --max-point-seconds "
                                    f"{args.max_point_seconds:.0f}"}
                print(f"{arch:8s} T={length:6d}  skipped ({point['skipped']})", flush=True)
                points.append(point)
                continue
            runs = 3 if predicted is not None and predicted < args.repeat_below else 1
            timeout = max(600.0, 3 * (predicted or 0) * runs)
            point = _measure(args, arch, length, runs, timeout)
            point["load_average_before"] = load_before
            point["load_average_after"] = os.getloadavg()
            point["predicted_s"] = predicted
            points.append(point)
            by_arch[arch][length] = point
            prev[arch] = point
            print(f"{arch:10s} T={length:6d}  {point['time_s']:8.2f} s  cpu {point['cpu_time_s']:8.2f} s  (fwd {point['forward_s']:.2f}, "
                  f"bwd {point['backward_s']:.2f})  peak RSS +{point['peak_rss_delta_mib']:.0f} MiB  "
                  f"saved {point['autograd_saved_mib']:.0f} MiB  load {load_before[0]:.1f}", flush=True)

    comparison = []
    for lact in names[1:]:
        for length in sorted(set(by_arch[lact]) & set(by_arch["baseline"])):
            la, ba = by_arch[lact][length], by_arch["baseline"][length]
            comparison.append({
                "series": lact,
                "encoder_frames": length,
                "speedup_lact_over_baseline": ba["time_s"] / la["time_s"],
                "cpu_time_speedup_lact_over_baseline": ba["cpu_time_s"] / la["cpu_time_s"],
                "peak_rss_ratio_lact_over_baseline": la["peak_rss_delta_mib"] / ba["peak_rss_delta_mib"],
                "autograd_saved_ratio_lact_over_baseline": la["autograd_saved_mib"] / ba["autograd_saved_mib"],
            })
    # The targets at 16k encoder tokens: window 64 >= 4x faster with no more memory,
    # window 2048 faster than full attention.
    targets = {}
    for lact in names[1:]:
        window = split_series(lact)[1]
        required = 4.0 if window <= 64 else 1.0
        target = next((c for c in comparison if c["series"] == lact and c["encoder_frames"] == 16384), None)
        t = {"at_encoder_frames": 16384, "required_speedup": required,
             "memory_required": window <= 64}
        if target:
            t.update(speedup=target["speedup_lact_over_baseline"],
                     speedup_met=target["speedup_lact_over_baseline"] > required if required == 1.0
                     else target["speedup_lact_over_baseline"] >= required,
                     cpu_time_speedup=target["cpu_time_speedup_lact_over_baseline"],
                     peak_rss_ratio=target["peak_rss_ratio_lact_over_baseline"],
                     memory_met=target["peak_rss_ratio_lact_over_baseline"] <= 1.0)
        else:
            t["note"] = "16384 not measured for both"
        targets[lact] = t

    streaming = None
    if args.stream_tokens > 0:
        t0 = time.time()
        streaming = _spawn(["--stream-worker", "--stream-tokens", str(args.stream_tokens),
                            "--stream-piece", str(args.stream_piece)]
                           + (["--config", args.config] if args.config else []), 3600)
        streaming["seconds"] = time.time() - t0
        for key in ("lact_asr_streaming_inference", "lact_generator_step", "baseline_generator_step"):
            rows = streaming[key]
            print(f"stream {key:30s} state {rows[0]['state_bytes'] / 2**20:7.2f} MiB at {rows[0]['tokens']} "
                  f"-> {rows[-1]['state_bytes'] / 2**20:7.2f} MiB at {rows[-1]['tokens']} tokens; "
                  f"last piece {rows[-1]['piece_s']:.2f} s", flush=True)

    result = {
        "benchmark": "sequence_scaling",
        "created_unix": started,
        "wall_seconds": time.time() - started,
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "torch": torch.__version__, "intra_op_threads": args.threads,
                    "malloc": args.preload or "glibc", "processes_per_point": args.processes,
                    "contention": "shared 2-core machine: other engineers' tests and jobs ran "
                                  "concurrently; see load_average_before/after per point"},
        "model_config": asdict(cfg),
        "code": code_fingerprint(),
        "method": {
            "workload": "build_model(ASR_MODELS, arch, config) in train mode, batch 1, input 4*T mel "
                        "frames (T encoder frames), loss = mean(logits^2), forward + backward",
            "isolation": "each point in a fresh subprocess, torch.set_num_threads(--threads), "
                         "after a 64-frame warm-up forward/backward and one torch.utils.checkpoint call "
                         "(its first call imports torch._dynamo)",
            "peak_memory": "VmHWM after - VmRSS before the first run, peak reset with "
                           "/proc/self/clear_refs; whole-process RSS incl. gradients and allocator slack",
            "autograd_saved": "bytes of distinct storages passed through saved_tensors_hooks",
            "time": "median of the runs (3 when predicted < --repeat-below s, else 1 run); "
                    "time_s = wall clock, cpu_time_s = process CPU time (1 thread, so it is the "
                    "work done and far less sensitive to other engineers' load than wall time)",
            "kernels": "CPU: kernels dispatch to the PyTorch path (no GPU here); Triton not timed",
        },
        "points": points,
        "comparison": comparison,
        "crossover": {lact: crossover(by_arch, lact=lact) for lact in names[1:]},
        "crossover_cpu_time": {lact: crossover(by_arch, "cpu_time_s", lact) for lact in names[1:]},
        "targets": targets,
        "streaming": streaming,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(result, Path(args.plot))
    print(f"crossover: {result['crossover']}  (CPU time: {result['crossover_cpu_time']})")
    print(f"targets: {targets}")
    print(f"wrote {out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

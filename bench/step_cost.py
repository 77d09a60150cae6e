"""CPU cost of one training step (forward + CTC loss + backward), LaCT ASR against its baseline.

    .venv/bin/python bench/step_cost.py [--repeats 15] [--threads 1] [--label TEXT]
        [--variant heads2:num_lact_heads=2 ...] [--fast-width 48 ...]

Both models are built from the same config (configs/demo-asr.yaml by default, dropout off) and
get the very same batch: 16 utterances whose lengths are drawn (fixed seed) between 3/4 of and
the full input length, padded like the training loader does. Two input lengths: the demo size
(--frames, 240 log-mel frames = 60 encoder tokens, the demo corpus's typical utterance) and
4x that. Steps alternate between the models (A B A B ...) so both see the same machine load;
the figure is the median over --repeats after 3 warm-up steps. Each model's aten ops per step
are counted once with torch.profiler (every aten:: event, nested ones included, and the matmul
kernels mm/bmm/addmm/baddbmm among them). A --variant is one more LaCT model with config
overrides, measured in the same alternation (e.g. fewer LaCT heads), together with the baseline
built from the same overrides: a variant's ratio is to that size-matched baseline (a LaCT model
with fewer fast-weight parameters gets a narrower baseline MLP). --fast-width N is the variant
`wN:inter_multi=N/lact_head_dim` (fast-weight hidden width N, e.g. 48 = `inter_multi: 1` at the
demo size) against its own full-attention arm; the record says, per LaCT model, whether its step
is within 1.3x of its baseline at the demo size. --compile wraps every model
in torch.compile(dynamic=True) and records, per length, each model's first step (compilation
included) beside the steady median.

Appends one record (with the load average before and after every length) to
bench/results/step_cost.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")


def model_config(path: Path, overrides: dict):
    import yaml
    from models import LaCTAudioConfig

    data = yaml.safe_load(path.read_text())
    fields = dict(data["model"]["config"]) if "config" in data.get("model", {}) else dict(data)
    fields.update(overrides, dropout=0.0)
    return LaCTAudioConfig.from_dict(fields)


def make_batch(frames: int, batch: int, mel_bins: int, vocab: int, seed: int = 0) -> dict:
    import torch

    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3 * frames // 4, frames + 1, (batch,), generator=gen)
    lengths[0] = frames                                    # the batch is padded to the longest
    features = torch.randn(batch, frames, mel_bins, generator=gen)
    features = features * (torch.arange(frames)[None, :, None] < lengths[:, None, None])
    token_lengths = torch.clamp(lengths // 12, min=1)      # ~3 encoder tokens per character
    tokens = torch.randint(1, vocab, (batch, int(token_lengths.max())), generator=gen)
    return {"features": features, "feature_lengths": lengths, "tokens": tokens,
            "token_lengths": token_lengths}


def train_step(model, batch: dict) -> None:
    from jobs.tasks.asr import ctc_loss

    model.zero_grad(set_to_none=True)
    logits, out_lengths = model(batch["features"], batch["feature_lengths"])
    ctc_loss(logits, out_lengths, batch["tokens"], batch["token_lengths"]).backward()


def count_ops(model, batch: dict) -> dict:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step(model, batch)
    counts: dict[str, int] = {}
    for event in prof.events():
        if event.name.startswith("aten::"):
            counts[event.name] = counts.get(event.name, 0) + 1
    return {"aten_ops": sum(counts.values()), "matmuls": sum(counts.get(m, 0) for m in MATMULS)}


def measure(models: dict, batch: dict, repeats: int) -> dict:
    first: dict[str, float] = {}
    for name, model in models.items():                     # first step: setup (and compilation)
        t0 = time.perf_counter()
        train_step(model, batch)
        first[name] = time.perf_counter() - t0
    for _ in range(2):                                     # warm-up: allocator
        for model in models.values():
            train_step(model, batch)
    wall: dict[str, list[float]] = {name: [] for name in models}
    cpu: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            c0, t0 = time.process_time(), time.perf_counter()
            train_step(model, batch)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    return {name: {"median_s": statistics.median(wall[name]), "min_s": min(wall[name]),
                   "max_s": max(wall[name]), "cpu_median_s": statistics.median(cpu[name]),
                   "first_step_s": first[name]}
            for name in models}


def parse_variant(text: str) -> tuple[str, dict]:
    import yaml

    name, _, assignments = text.partition(":")
    if not name or not assignments:
        raise SystemExit(f"error: --variant wants NAME:key=value[,key=value], got {text!r}")
    overrides = {}
    for item in assignments.split(","):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return name, overrides


def git_head() -> str | None:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    return out.stdout.strip() or None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "demo-asr.yaml"))
    ap.add_argument("--frames", type=int, default=240, help="demo-size input length (log-mel frames)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--variant", action="append", default=[], help="NAME:key=value,... (extra LaCT model)")
    ap.add_argument("--fast-width", type=int, action="append", default=[],
                    help="variant wN with fast-weight hidden width N (inter_multi = N / lact_head_dim)")
    ap.add_argument("--compile", action="store_true", help="torch.compile(dynamic=True) every model")
    ap.add_argument("--label", default="")
    ap.add_argument("--output", default=str(REPO / "bench" / "results" / "step_cost.json"))
    args = ap.parse_args()

    import torch
    from models import ASR_MODELS, build_model, count_parameters

    torch.set_num_threads(args.threads)
    base_cfg = model_config(Path(args.config), {})
    # "baseline" names the size-matched full_attention arm (models/arms.py) in the record
    configs = {"lact": ("lact", base_cfg), "baseline": ("full_attention", base_cfg)}
    reference = {"lact": "baseline"}   # each LaCT model's size-matched baseline
    variants = {}
    widths = [f"w{n}:inter_multi={n / base_cfg.lact_head_dim!r}" for n in args.fast_width]
    for text in args.variant + widths:
        name, overrides = parse_variant(text)
        variant_cfg = model_config(Path(args.config), overrides)
        configs[f"lact-{name}"] = ("lact", variant_cfg)
        # the baseline of the variant's own config: its MLP is widened by what that LaCT layer adds
        configs[f"baseline-{name}"] = ("full_attention", variant_cfg)
        reference[f"lact-{name}"] = f"baseline-{name}"
        variants[f"lact-{name}"] = text
    models = {}
    for name, (arch, cfg) in configs.items():
        torch.manual_seed(0)
        models[name] = build_model(ASR_MODELS, arch, cfg).train()
        if args.compile:
            models[name] = torch.compile(models[name], dynamic=True)

    lengths = []
    for frames in (args.frames, 4 * args.frames):
        batch = make_batch(frames, args.batch, base_cfg.mel_bins, base_cfg.vocab_size)
        load_before = os.getloadavg()
        timing = measure(models, batch, args.repeats)
        load_after = os.getloadavg()
        ops = {name: count_ops(model, batch) for name, model in models.items()}
        row = {"input_frames": frames, "encoder_tokens": -(-frames // 4),
               "load_average_before": load_before, "load_average_after": load_after,
               "models": {name: {**timing[name], **ops[name]} for name in models},
               "ratio_to_baseline": {name: timing[name]["median_s"] / timing[base]["median_s"]
                                     for name, base in reference.items()},
               "cpu_ratio_to_baseline": {name: timing[name]["cpu_median_s"] / timing[base]["cpu_median_s"]
                                         for name, base in reference.items()}}
        lengths.append(row)
        print(f"{frames:5d} frames  load {load_before[0]:.2f}->{load_after[0]:.2f}", flush=True)
        for name in models:
            m = row["models"][name]
            ratio = row["ratio_to_baseline"].get(name)
            cpu_ratio = row["cpu_ratio_to_baseline"].get(name)
            print(f"   {name:16s} {m['median_s'] * 1e3:8.1f} ms (cpu {m['cpu_median_s'] * 1e3:8.1f} ms)  "
                  f"{m['aten_ops']:5d} aten ops ({m['matmuls']} matmuls), first step {m['first_step_s']:.1f} s"
                  + (f"  {ratio:.2f}x {reference[name]} (cpu {cpu_ratio:.2f}x)" if ratio else ""), flush=True)

    record = {
        "benchmark": "step_cost", "label": args.label, "git_head": git_head(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "threads": args.threads, "batch": args.batch,
        "repeats": args.repeats, "config": os.path.relpath(args.config, REPO), "compiled": args.compile,
        "parameters": {name: count_parameters(m) for name, m in models.items()},
        "variants": variants,
        "ratio_reference": reference,
        "method": "forward + CTC loss + backward (no optimizer step), train mode, dropout 0; "
                  "models alternate step by step; median of repeats after 3 warm-up steps; "
                  "median_s = wall clock, cpu_median_s = process CPU time (with 1 thread the work "
                  "done, far less sensitive to other processes' load than wall time)",
        "target": "LaCT step <= 1.3x the baseline's at the demo size",
        "target_met": lengths[0]["ratio_to_baseline"]["lact"] <= 1.3,
        "target_met_cpu_time": lengths[0]["cpu_ratio_to_baseline"]["lact"] <= 1.3,
        "target_met_per_model": {name: {"wall": lengths[0]["ratio_to_baseline"][name] <= 1.3,
                                        "cpu_time": lengths[0]["cpu_ratio_to_baseline"][name] <= 1.3}
                                 for name in reference},
        "lengths": lengths,
    }
    out = Path(args.output)
    history = json.loads(out.read_text()) if out.exists() else []
    history.append(record)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(history, indent=2) + "\n")
    print(f"appended to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

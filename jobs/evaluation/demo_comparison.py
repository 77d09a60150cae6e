"""The last stage of `lact-audio demo`: the full suite on its ASR models and its test split,
with sizes scaled to the data (a demo test split holds minutes, not hours, of held-out voices)
and to the time left in the demo's budget."""

from __future__ import annotations

import statistics
import time

import torch

from jobs.evaluation.data import read_split
from jobs.evaluation.recordings import chapters
from jobs.evaluation.suite import FULL, SuiteConfig, run_suite


def demo_config(split_uri: str, seconds_left: float) -> SuiteConfig:
    """Long-form recordings of a quarter and half of the median chapter's audio and whole
    chapters (so every test voice gives recordings); efficiency inputs up to a minute; each
    measurement limited to a share of the time left."""
    split = read_split(split_uri)
    per_chapter = [sum(u.duration for u in utts) for utts in chapters(split).values()]
    median = statistics.median(per_chapter)
    total = min(60.0, sum(per_chapter))
    return SuiteConfig(
        suite=FULL,
        long_form_seconds=sorted({round(median * f, 1) for f in (0.25, 0.5)}), long_form_longest=True,
        efficiency_seconds=sorted({round(total * f, 1) for f in (0.125, 0.25, 0.5, 1.0)}),
        stream_seconds=min(1800.0, 10 * sum(per_chapter)),
        time_limit=max(10.0, seconds_left / 10),
    )


def run_demo_comparison(models: dict[str, dict], split_uri: str, report_uri: str,
                        seconds_left: float) -> dict:
    """models: the demo summary's {"lact": {...model_uri...}, "window": {...}, ...}. Returns what
    the demo summary keeps: the report's location, the headline figures, every pair's paired
    comparison and the time taken."""
    started = time.perf_counter()
    print(f"[eval] full evaluation suite of the ASR models on {split_uri}", flush=True)
    config = demo_config(split_uri, seconds_left)
    # One thread: the demo models are small, and on a shared 2-core machine two threads spun
    # instead of computing (measured: one suite 5 s with one thread, minutes with two, under load).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        results = run_suite([m["model_uri"] for m in models.values()], split_uri, report_uri, config,
                            echo=False)
    finally:
        torch.set_num_threads(threads)
    headline = {}
    for label, m in results["models"].items():
        lengths = m["long_form"]["lengths"]
        headline[label] = {"cer": m["cer"], "beam_cer": m["beam"]["cer"],
                           "long_form": [{"length": x["length"], "recordings": x["recordings"],
                                          "speakers": x["speakers"], "seconds_median": x["seconds_median"],
                                          "cer": (x["one_pass"] or {}).get("cer"),
                                          "segmented_cer": (x["segmented"] or {}).get("cer"),
                                          "context_gain": {k: x["context_gain"].get(k)
                                                           for k in ("difference", "low", "high", "status")}}
                                         for x in lengths]}
        ablation = m.get("fast_weight_ablation") or {}
        if ablation.get("status") == "ok":   # LaCT: the same model without test-time updates
            headline[label].update(cer_without_updates=ablation["cer"],
                                   fast_weight_change=ablation["fast_weight_change"])
        long_form = ", ".join(
            f"{x['length']} ({x['recordings']}): " + (f"{x['one_pass']['cer']:.3f}" if x["one_pass"] else "not decoded")
            + (f" gain {x['context_gain']['difference']:+.3f}" if x["context_gain"].get("status") == "ok" else "")
            for x in lengths)
        print(f"      {label}: CER {m['cer']:.3f} (beam {m['beam']['cer']:.3f}); long-form {long_form}",
              flush=True)
    print(f"      report {results['report']}", flush=True)
    return {"report": results["report"], "metrics": results["report"].rsplit("/", 1)[0] + "/metrics.json",
            "models": headline, "comparisons": results.get("comparisons", []),
            "long_form_seconds": config.long_form_seconds,
            "seconds": round(time.perf_counter() - started, 1)}

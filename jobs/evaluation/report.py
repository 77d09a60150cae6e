"""report.md: the evaluation's tables and PNG plots, models side by side.

`write_report(results, directory)` takes what metrics.json holds ({"models": {label: metrics},
...}) and writes report.md plus one PNG per plot into a local directory; it returns the names
of the files written. Sections without data for any model are left out; a model a section does
not apply to shows the reason.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")   # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from jobs.tasks import task_named  # noqa: E402


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mb(n) -> str:
    return "-" if n is None else f"{n / 2**20:.1f}"


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_num(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _plot(path: str, title: str, xlabel: str, ylabel: str, series: dict[str, tuple[list, list]],
          logx: bool = False) -> bool:
    series = {k: v for k, v in series.items() if v[0]}
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, (xs, ys) in series.items():
        ax.plot(xs, ys, marker="o", label=label)
    if logx:
        ax.set_xscale("log", base=2)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def _not_applicable(section: dict | None) -> str | None:
    if not isinstance(section, dict):
        return None
    if section.get("status") in ("not_applicable", "not_measured"):
        return section.get("reason", section["status"])
    return None


class _Report:
    def __init__(self, directory: str):
        self.directory = directory
        self.lines: list[str] = []
        self.files: list[str] = []

    def figure(self, name: str, *args, **kwargs) -> None:
        if _plot(os.path.join(self.directory, name), *args, **kwargs):
            self.files.append(name)
            self.lines += [f"![{args[0]}]({name})", ""]


def write_report(results: dict, directory: str) -> list[str]:
    os.makedirs(directory, exist_ok=True)
    models: dict[str, dict] = results["models"]
    r = _Report(directory)
    r.lines += [f"# Evaluation report ({results.get('suite', 'quick')} suite)", "",
                f"Data: `{results.get('data')}` ({results.get('utterances')} utterances, "
                f"{_num(results.get('audio_seconds'), 1)} s). Created {results.get('created')}; "
                f"timings on {results.get('device', 'cpu')} with {results.get('torch_threads')} torch "
                f"thread(s).", ""]
    r.lines += ["| label | model | task | parameters |", "|---|---|---|---|"]
    r.lines += [f"| {k} | `{m.get('model')}` | {m.get('task')} / {m.get('architecture')} | "
                f"{m.get('parameters', 0):,} |" for k, m in models.items()]
    r.lines.append("")
    for name, section in _task_sections(models):
        SECTIONS[name](r, section)
    _comparison_section(r, results.get("comparisons", []))
    _efficiency_section(r, models)
    nm = {}
    for m in models.values():
        nm.update(m.get("not_measured", {}))
    if nm:
        r.lines += ["## Not measured", ""] + [f"- **{k}**: {v}" for k, v in nm.items()] + [""]
    with open(os.path.join(directory, "report.md"), "w") as f:
        f.write("\n".join(r.lines))
    return ["report.md"] + r.files


def _task_sections(models: dict) -> list[tuple[str, dict]]:
    """(section name, {label: metrics} of the models whose task shows it), in report order."""
    shown: dict[str, dict] = {}
    for k, m in models.items():
        for name in task_named(m.get("task")).report_sections:
            shown.setdefault(name, {})[k] = m
    return [(name, shown[name]) for name in SECTIONS if name in shown]


def _recognition_section(r: _Report, asr: dict) -> None:
    r.lines += ["## Recognition (short utterances)", ""]
    rows = [[k, m["cer"], m["wer"], (m.get("beam") or {}).get("cer"), (m.get("beam") or {}).get("wer"),
             m.get("utterances")] for k, m in asr.items()]
    r.lines += _table(["model", "CER greedy", "WER greedy", "CER beam", "WER beam", "utterances"], rows)
    for key, title in (("per_speaker", "speaker"), ("per_language", "language")):
        groups = sorted({g for m in asr.values() for g in m.get(key, {})})
        if len(groups) > 1 or key == "per_speaker":
            r.lines += [f"### CER per {title}", ""]
            rows = [[g] + [m.get(key, {}).get(g, {}).get("cer") for m in asr.values()] +
                    [max(m.get(key, {}).get(g, {}).get("utterances", 0) for m in asr.values())]
                    for g in groups]
            r.lines += _table([title] + list(asr) + ["utterances"], rows)


def _streaming_section(r: _Report, asr: dict) -> None:
    if any("streaming" in m for m in asr.values()):
        r.lines += ["## Streaming against offline", ""]
        rows = []
        for k, m in asr.items():
            s = m.get("streaming") or {}
            why = _not_applicable(s)
            if why:
                rows.append([k, why, "-", "-", "-", "-", "-", "-"])
                continue
            ls = s["long_stream"]
            rows.append([k, s["offline_cer"], s["streaming_cer"], f"{ls['stream_seconds']:.0f} s ({ls['status']})",
                         ls.get("cer"), f"{ls['latency_p50_ms']:.1f} / {ls['latency_p95_ms']:.1f}",
                         ls["rtf"], _mb(ls["state_bytes_max"])])
        r.lines += _table(["model", "offline CER", "streaming CER", "long stream", "stream CER",
                           "chunk latency p50/p95 ms", "RTF", "state MB"], rows)
        r.figure("memory_over_stream.png", "Memory over a long stream", "stream seconds", "MB",
                 {**{f"{k} state": ([p["stream_seconds"] for p in m["streaming"]["long_stream"]["memory"]],
                                    [p["state_bytes"] / 2**20 for p in m["streaming"]["long_stream"]["memory"]])
                     for k, m in asr.items() if not _not_applicable(m.get("streaming"))},
                  **{f"{k} RSS growth": ([p["stream_seconds"] for p in m["streaming"]["long_stream"]["memory"]],
                                         [p["rss_bytes"] / 2**20 for p in m["streaming"]["long_stream"]["memory"]])
                     for k, m in asr.items() if not _not_applicable(m.get("streaming"))}})


def _ablation_section(r: _Report, asr: dict) -> None:
    if any("fast_weight_ablation" in m for m in asr.values()):
        r.lines += ["## Fast-weight ablation (every test-time update skipped)", ""]
        rows = []
        for k, m in asr.items():
            a = m.get("fast_weight_ablation") or {}
            why = _not_applicable(a)
            rows.append([k, why or a.get("cer_with_updates"), "-" if why else a.get("cer"),
                         "-" if why else a.get("cer_change"), "-" if why else a.get("fast_weight_change")])
        r.lines += _table(["model", "CER with updates", "CER updates skipped", "change",
                           "mean fast-weight change"], rows)


def _quantized_section(r: _Report, asr: dict) -> None:
    if any("quantized" in m for m in asr.values()):
        r.lines += ["## Quantised inference", ""]
        rows = []
        for k, m in asr.items():
            q = m.get("quantized") or {}
            for name in ("float32", "int8_dynamic", "float16"):
                e = q.get(name) or {}
                if _not_applicable(e):
                    rows.append([k, name, f"not measured: {e['reason']}", "-", "-", "-"])
                elif e:
                    rows.append([k, f"{name} ({e.get('device')})", e.get("cer"), e.get("cer_change"),
                                 e.get("seconds"), e.get("speedup")])
        r.lines += _table(["model", "precision", "CER", "CER change", "seconds", "speed-up"], rows)


def _generation_sections(r: _Report, gen: dict) -> None:
    r.lines += ["## Audio-token generation", ""]
    rows = [[k, m.get("nll_bits"), m.get("tokens"), m.get("pesq"), m.get("stoi")] for k, m in gen.items()]
    r.lines += _table(["model", "NLL bits/token", "tokens", "tokenizer PESQ", "tokenizer STOI"], rows)
    _nll_position_section(r, gen)
    samples = [(k, s) for k, m in gen.items() for s in m.get("continuations", [])]
    if samples:
        r.lines += ["### Continuation samples", ""]
        for k, s in samples:
            r.lines += [f"- {k}, prompt `{s['utt_id']}` ({s['prompt_seconds']:.2f} s + "
                        f"{s['continuation_seconds']:.2f} s): [audio]({s['wav']})", "",
                        f"  ![{k} {s['utt_id']}]({s['png']})", ""]


def _efficiency_section(r: _Report, models: dict) -> None:
    rows, lat, mem, flops = [], {}, {}, {}
    for k, m in models.items():
        unit = task_named(m.get("task")).efficiency_unit
        for e in m.get("efficiency", []):
            x = e[unit]
            if e["status"] != "ok":
                rows.append([k, f"{x} {unit[:-1] if unit == 'tokens' else 's'}", e["status"], "-", "-", "-"])
                continue
            rows.append([k, f"{x:g} {'tok' if unit == 'tokens' else 's'}", e["latency_s"],
                         _mb(e["peak_memory_bytes"]), e.get("rtf"), f"{e['flops'] / 1e9:.2f}"])
            for store, value in ((lat, e["latency_s"]), (mem, e["peak_memory_bytes"] / 2**20),
                                 (flops, e["flops"] / 1e9)):
                xs, ys = store.setdefault(f"{k} ({unit})", ([], []))
                xs.append(x)
                ys.append(value)
    if not rows:
        return
    r.lines += ["## Efficiency against input length", ""]
    r.lines += _table(["model", "input", "latency s", "peak memory MB", "RTF", "GFLOPs"], rows)
    r.figure("latency_vs_length.png", "Latency against input length", "input length", "seconds", lat)
    r.figure("memory_vs_length.png", "Peak memory against input length", "input length", "MB", mem)
    r.figure("flops_vs_length.png", "FLOPs against input length", "input length", "GFLOPs", flops)


def _comparison_section(r: _Report, comparisons: list[dict]) -> None:
    """Each pair's difference with its paired-bootstrap interval (jobs/evaluation/comparison.py)."""
    if not comparisons:
        return
    first = next(iter(comparisons[0]["metrics"].values()))
    r.lines += ["## Paired comparisons", "",
                f"A - B on the units both models scored, with the {first['confidence']:.0%} paired-bootstrap "
                f"interval ({first['resamples']} resamples, seed {first['seed']}). An interval that "
                "includes 0 shows no difference.", ""]
    rows = []
    for pair in comparisons:
        for metric, m in pair["metrics"].items():
            verdict = ("no difference" if not m["significant"]
                       else f"{pair['a'] if m['difference'] < 0 else pair['b']} lower")
            rows.append([pair["a"], pair["b"], metric, m["a"], m["b"], f"{m['difference']:+.4f}",
                         f"[{m['low']:+.4f}, {m['high']:+.4f}]", f"{m['p_value']:.3f}",
                         f"{m['units']} {m['unit']}s", verdict])
    r.lines += _table(["A", "B", "metric", "A", "B", "A - B", "95 % interval", "p", "units", "verdict"], rows)


def _interval(result: dict | None, digits: int = 4) -> str:
    """'+0.0123 [-0.0040, +0.0290]' of a paired-bootstrap result, or why there is none."""
    if not result or result.get("status", "ok") != "ok":
        return "-" if not result else result.get("reason", result.get("status", "-"))
    if result["units"] < 2:   # one unit resampled is always itself: no spread to show
        return f"{result['difference']:+.{digits}f} (one {result.get('unit', 'unit')}: no interval)"
    return (f"{result['difference']:+.{digits}f} [{result['low']:+.{digits}f}, {result['high']:+.{digits}f}]"
            + (" *" if result.get("significant") else ""))


def _cer(section: dict | None) -> str:
    return "-" if not section else f"{section['cer']:.3f}"


def _long_form_section(r: _Report, asr: dict) -> None:
    """Recordings per length, CER one pass and segmented, the context gain with its interval."""
    have = {k: m["long_form"] for k, m in asr.items() if (m.get("long_form") or {}).get("lengths")}
    if not have:
        return
    r.lines += ["## Long-form recordings: one pass against segmented", "",
                "Each recording joins one chapter's consecutive utterances (one speaker, never mixed). "
                "One pass: the whole recording as one input (block-causal models streamed with their "
                "state, the others in one forward); segmented: utterance by utterance, the reference. "
                "Context gain = CER segmented - CER one pass (positive: the context helped), with its 95 % "
                "paired-bootstrap interval over recordings (* = excludes 0).", ""]
    lengths = next(iter(have.values()))["lengths"]
    rows = [[x["length"], x["recordings"], x["speakers"], x["chapters"],
             "-" if x["seconds_min"] is None else f"{x['seconds_min']:.0f} / {x['seconds_median']:.0f} / "
                                                   f"{x['seconds_max']:.0f}",
             "; ".join(x["notes"]) or "as asked"] for x in lengths]
    r.lines += _table(["length", "recordings", "speakers", "chapters", "seconds min / median / max",
                       "counts"], rows)
    rows = []
    for k, lf in have.items():
        for x in lf["lengths"]:
            failed = ", ".join(f"{n} {s}" for s, n in x["failed"].items()) or "-"
            rows.append([x["length"], k, lf.get("mode", "-"), _cer(x["one_pass"]), _cer(x["segmented"]),
                         _interval(x["context_gain"]), f"{x['decoded']} / {x['recordings']}", failed])
        rows.append(["all", k, lf.get("mode", "-"), "-", "-", _interval(lf.get("context_gain")),
                     str(sum(x["decoded"] for x in lf["lengths"])), "-"])
    r.lines += _table(["length", "model", "one pass", "CER one pass", "CER segmented",
                       "context gain [95 % interval]", "decoded", "failed"], rows)
    r.figure("cer_vs_duration.png", "CER against recording length (one pass)", "median recording seconds", "CER",
             {k: ([x["seconds_median"] for x in lf["lengths"] if x["one_pass"]],
                  [x["one_pass"]["cer"] for x in lf["lengths"] if x["one_pass"]]) for k, lf in have.items()})


def _adaptation_section(r: _Report, asr: dict) -> None:
    """Sessions in one pass and streamed, then chained state where it was run."""
    have = {k: m["adaptation"] for k, m in asr.items() if isinstance(m.get("adaptation"), dict)}
    if not have:
        return
    r.lines += ["## Sessions and speaker adaptation", "",
                "Sessions cut from the split as training cuts its session rows; one pass (one forward) "
                "and, for block-causal models, streamed across the session, each against the same "
                "session utterance by utterance. Chained state (one utterance's end state carried into "
                "the next) only where the model's training carried state across utterances.", ""]
    rows = []
    for k, a in have.items():
        one, streamed = a.get("one_pass_sessions") or {}, a.get("streamed_sessions") or {}
        chained = a.get("chained") or {}
        rows.append([k, (a.get("training") or {}).get("condition", "unknown"), one.get("recordings", "-"),
                     _cer(one.get("one_pass")), _cer(one.get("segmented")), _interval(one.get("context_gain")),
                     _not_applicable(streamed) or _cer(streamed.get("one_pass")),
                     "run" if chained.get("status") == "ok" else chained.get("reason", "-")])
    r.lines += _table(["model", "trained on", "sessions", "CER one pass", "CER segmented",
                       "context gain [95 % interval]", "CER streamed", "chained state"], rows)
    chained = {k: a["chained"] for k, a in have.items() if (a.get("chained") or {}).get("status") == "ok"}
    if not chained:
        return
    r.lines += ["### Chained state: fresh against carried", ""]
    r.lines += _table(["model", "CER fresh state", "CER state carried", "speakers"],
                      [[k, c["fresh_cer"], c["carried_cer"], c["speakers"]] for k, c in chained.items()])
    for k, c in chained.items():
        positions = c.get("by_position") or []
        if not positions:
            continue
        r.lines += [f"{k}: CER by utterance position within a speaker's session (recording order), "
                    "fresh state against the state carried from the earlier utterances:", ""]
        r.lines += _table(["position", "utterances", "CER fresh", "CER carried"],
                          [[x["position"], x["utterances"], x["fresh_cer"], x["carried_cer"]] for x in positions])
        r.figure(f"cer_by_position_{k}.png", f"{k}: CER by position in the session", "position",
                 "CER", {label: (list(range(1, len(positions) + 1)), [x[key] for x in positions])
                         for label, key in (("fresh", "fresh_cer"), ("carried", "carried_cer"))})
    counts = sorted({x["utterances"] for c in chained.values() for x in c.get("by_count", [])})
    if counts:
        rows = [[n] + [next((x["cer"] for x in c.get("by_count", []) if x["utterances"] == n), None)
                       for c in chained.values()] for n in counts]
        r.lines += ["CER on the same held-out utterances after adapting on k utterances:", ""]
        r.lines += _table(["k"] + list(chained), rows)
        r.figure("cer_vs_adaptation.png", "CER against adaptation utterances", "adaptation utterances", "CER",
                 {k: ([x["utterances"] for x in c.get("by_count", [])], [x["cer"] for x in c.get("by_count", [])])
                  for k, c in chained.items()})


def _nll_position_section(r: _Report, gen: dict) -> None:
    """Bits/token per position bin with each model's interval and sequence count; omitted bins."""
    have = {k: m["nll_by_position"] for k, m in gen.items() if isinstance(m.get("nll_by_position"), dict)}
    if not have:
        return
    r.lines += ["### NLL (bits/token) by position on long single-speaker sequences", "",
                "Each sequence joins one chapter's audio tokens; a bin counts the sequences that cover it "
                "whole. Value [95 % bootstrap interval over sequences] (sequences); the paired differences "
                "between models per bin are under Paired comparisons (nll_bits_<bin>).", ""]
    labels = []
    for p in have.values():
        labels += [b["label"] for b in p.get("bins", []) if b["label"] not in labels]
    rows = []
    for label in labels:
        row = [label]
        for p in have.values():
            b = next((x for x in p.get("bins", []) if x["label"] == label), None)
            row.append("-" if b is None else
                       f"{b['nll_bits']:.3f} [{b['low']:.3f}, {b['high']:.3f}] ({b['sequences']})")
        rows.append(row)
    if rows:
        r.lines += _table(["positions"] + list(have), rows)
    for k, p in have.items():
        r.lines += [f"- {k}: " + (f"not measured: {p.get('reason', p.get('status'))}" if p.get("status") != "ok" else
                                  f"{len(p['sequences'])} sequences from {p['speakers']} speakers "
                                  f"(at most {p['sequences_wanted']} asked for)")]
        r.lines += [f"- {k}: bin {o['label']} omitted: {o['reason']}" for o in p.get("omitted", [])]
    r.lines.append("")
    r.figure("nll_by_position.png", "NLL by position", "position (bin end, tokens)", "bits/token",
             {k: ([b["hi"] for b in p.get("bins", [])], [b["nll_bits"] for b in p.get("bins", [])])
              for k, p in have.items()}, logx=True)


# the sections a task shows (task.report_sections), in report order
SECTIONS = {
    "recognition": _recognition_section, "long_form": _long_form_section, "streaming": _streaming_section,
    "adaptation": _adaptation_section, "fast_weight_ablation": _ablation_section,
    "quantized": _quantized_section, "audio_token_nll": _generation_sections,
}

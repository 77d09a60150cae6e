"""The study's report: one row per trial as CSV and markdown, and two plots (dev metric against
chunk size, one line per update rule; dev metric against wall time, one line per trial)."""

from __future__ import annotations

import csv
import os

COLUMNS = ("trial_id", "arm", "update_rule", "chunk_size", "window_size", "num_lact_heads",
           "base_lr", "lr", "seed", "status", "steps", "seconds")


def rows(trials: list[dict], metric: str) -> list[dict]:
    """Flat rows, best dev metric first (trials without one last)."""
    out = []
    for t in trials:
        row = {"trial_id": t["trial_id"], **t["settings"], "status": t["status"],
               "steps": t["steps"], "seconds": round(t["seconds"] or 0.0, 1),
               f"dev_{metric}": None if t["metric"] is None else round(t["metric"], 4)}
        out.append(row)
    return sorted(out, key=lambda r: (r[f"dev_{metric}"] is None, r[f"dev_{metric}"] or 0.0))


def write_csv(table: list[dict], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)


def markdown(table: list[dict]) -> str:
    header = list(table[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table:
        lines.append("| " + " | ".join("-" if row[c] is None else str(row[c]) for c in header) + " |")
    return "\n".join(lines)


def plot_chunk_size(trials: list[dict], metric: str, path: str) -> None:
    """LaCT-arm trials: dev metric against chunk size, one line per update rule. A hollow marker
    is a trial ASHA stopped early: its metric is from fewer steps, not comparable to the rest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    lact = [t for t in trials if t["settings"]["arm"] == "lact" and t["metric"] is not None]
    for rule in sorted({t["settings"]["update_rule"] for t in lact}):
        points = sorted((t["settings"]["chunk_size"], t["metric"], t.get("status") == "stopped")
                        for t in lact if t["settings"]["update_rule"] == rule)
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=rule)
        stopped = [p for p in points if p[2]]
        ax.plot([p[0] for p in stopped], [p[1] for p in stopped], "o", color=line.get_color(),
                markerfacecolor="white", linestyle="none")
    others = [t for t in trials if t["settings"]["arm"] != "lact" and t["metric"] is not None]
    for t in others:  # the ablation arms as reference levels
        ax.axhline(t["metric"], linestyle="--", linewidth=1, color="gray")
        ax.annotate(t["settings"]["arm"], (0.01, t["metric"]), xycoords=("axes fraction", "data"),
                    fontsize=7, color="gray")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("chunk size (tokens)")
    ax.set_ylabel(f"dev {metric} (best; hollow: stopped early)")
    if lact:
        ax.legend(title="update rule")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_wall_time(trials: list[dict], metric: str, path: str) -> None:
    """Every trial's dev metric at each evaluation against the trial's wall time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for t in trials:
        if t["curve"]:
            ax.plot([c[0] for c in t["curve"]], [c[1] for c in t["curve"]], marker=".",
                    label=f"{t['trial_id']} {t['settings']['arm']}")
    ax.set_xlabel("wall time (s)")
    ax.set_ylabel(f"dev {metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_all(trials: list[dict], metric: str, directory: str) -> tuple[str, list[str]]:
    """table.csv, table.md and the plots into `directory`; returns (markdown, file paths)."""
    os.makedirs(directory, exist_ok=True)
    table = rows(trials, metric)
    text = markdown(table)
    files = [os.path.join(directory, n) for n in
             ("table.csv", "table.md", "dev_vs_chunk_size.png", "dev_vs_wall_time.png")]
    write_csv(table, files[0])
    with open(files[1], "w") as f:
        f.write(text + "\n")
    plot_chunk_size(trials, metric, files[2])
    plot_wall_time(trials, metric, files[3])
    return text, files

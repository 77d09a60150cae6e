"""`lact-audio demo`: the whole product on one machine, no arguments needed.

Synthesise a small LibriSpeech-layout corpus (held-out voices in test-clean), preprocess it on Ray
Data, train three ASR models of the same size with the same budget on Ray Train (LaCT, the
window-attention arm and full attention, each at its own tuned recipe: configs/demo-arms.yaml),
evaluate them on the test split with paired-bootstrap intervals between every pair, log everything
to MLflow, print a comparison table and write <work dir>/demo/summary.json. A short LaCT vs full
attention audio-token generator run follows when --generation is on (default).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pipeline.phase_timer import PhaseTimer

HELP = ("end to end demo: synthesise, preprocess, train LaCT, window and full-attention ASR, "
        "evaluate, compare with intervals")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hours", type=float, default=1.0, help="synthetic audio to make (default 1.0)")
    parser.add_argument("--max-steps", type=int, default=None,
                        help="training steps of every run (default: configs/demo-asr.yaml, demo-generation.yaml)")
    parser.add_argument("--data-only", action="store_true", help="stop after synthesis + preprocessing")
    parser.add_argument("--no-generation", dest="generation", action="store_false",
                        help="skip the short audio-token generator comparison")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget-minutes", type=float, default=20.0,
                        help="wall-time budget; the generator runs only when it still fits (default 20)")


def demo_arms() -> dict[str, dict[str, dict]]:
    """{"asr": {arm: overrides}, "generation": {...}} from configs/demo-arms.yaml."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "demo-arms.yaml"), resolve=True)


def train_arms(config: str, arms: dict[str, dict], overrides: list[str], clock: PhaseTimer,
               stage: str) -> dict:
    """Each arm trained from one config with the same budget (and its own recipe overrides); per
    model its test metrics, size, speed and where it is (MLflow run, registered model)."""
    from jobs.training.config import load_config
    from jobs.training.run import run_training

    results = {}
    for arch, recipe in arms.items():
        own = [f"{key}={value}" for key, value in (recipe or {}).items()]
        cfg = load_config(str(CONFIGS / f"{config}.yaml"),
                          overrides + own + [f"model.architecture={arch}", f"name={config}-{arch}"])
        s = run_training(cfg, echo=False)
        scores = {k: v for k, v in s["test"].items() if k in ("cer", "wer", "nll_bits")}
        results[arch] = {
            **scores, **{f"dev_{k}": s["dev"][k] for k in scores if k in s["dev"]},
            "params": s["parameters"], "train_seconds": s["train_seconds"],
            "throughput": s["audio_seconds_per_second"], "steps": s["steps"],
            "model_uri": s["model_uri"], "mlflow_run_id": s["mlflow_run_id"], "run_dir": s["run_dir"]}
        shown = ", ".join(f"test {k} {v:.3f}" for k, v in scores.items())
        print(f"      {arch}: {shown} in {s['train_seconds']:.0f} s", flush=True)
        clock.done(f"{stage}_{arch}")
    return results


def run(args: argparse.Namespace) -> int:
    from jobs.training.run import write_json
    from jobs.runs.tracking import tracking_uri
    from pipeline import uri as uris
    from pipeline.errors import UserError
    from pipeline.preprocess import PreprocessConfig, run_preprocess
    from pipeline.ray_connection import connect
    from pipeline.synthetic.corpus import synthesize_corpus

    if not args.hours > 0:
        raise UserError("--hours must be > 0")
    if not args.budget_minutes > 0:
        raise UserError("--budget-minutes must be > 0")
    if args.max_steps is not None and args.max_steps < 1:   # before minutes of synthesis, not after
        raise UserError(f"--max-steps must be >= 1, got {args.max_steps}")
    clock = PhaseTimer()
    demo = uris.join(uris.work_home(), "demo")
    raw, features = uris.join(demo, "raw"), uris.join(demo, "features")
    uris.ensure_writable(demo, "demo work directory")

    print(f"[1/4] synthesising {args.hours} h of speech into {raw}", flush=True)
    synth = synthesize_corpus("librispeech", raw, hours=args.hours, seed=args.seed, progress=True)
    clock.done("synthesis")
    took = "reused" if synth.get("skipped") else f"{synth['elapsed_seconds']:.0f} s"
    print(f"      {synth['utterances']} utterances, {synth['hours']:.3f} h ({took})", flush=True)
    connect(None)  # one Ray for preprocessing and every training run
    print(f"[2/4] preprocessing into {features}", flush=True)
    prep = run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=raw, output_uri=features,
                                           audio_tokens="mulaw", progress=False))
    clock.done("preprocessing")
    print(f"      written {prep['written']}, quarantined {prep['quarantined']}, "
          f"{prep['hours']:.3f} h in {prep['seconds']:.0f} s", flush=True)
    summary = {"work_dir": uris.work_home(), "corpus": raw, "features": features,
               "test_split": uris.join(features, "test-clean"),
               "data": {"utterances": prep["written"], "hours": prep["hours"],
                        "quarantined": prep["quarantined"]},
               "models": {}, "generation": {}, "stage_seconds": clock.rounded(1)}
    if args.data_only:
        write_json(uris.join(demo, "summary.json"), summary)
        print(f"data ready: {features} (summary {uris.join(demo, 'summary.json')})")
        return 0

    common = [f"data.root={features}", f"output={uris.join(demo, 'train')}",
              f"train.seed={args.seed}"]
    if args.max_steps is not None:
        common.append(f"train.max_steps={args.max_steps}")
    arms = demo_arms()
    print(f"[3/4] training {', '.join(arms['asr'])} ASR with the same budget", flush=True)
    summary["models"] = train_arms("demo-asr", arms["asr"], common, clock, "asr")
    # Last measured (README "Results", 900 ASR steps), the generator runs took 173 s after 763 s
    # of three ASR runs (0.23); a quarter of the ASR time leaves a margin for a slower machine.
    left = args.budget_minutes * 60 - clock.elapsed()
    needed = sum(clock.seconds[f"asr_{arch}"] for arch in arms["asr"]) / 4
    if args.generation and left < needed:
        summary["generation"] = {"skipped": f"{max(left, 0):.0f} s of the {args.budget_minutes:g} min "
                                            f"budget left, about {needed:.0f} s needed"}
        print(f"[4/4] generator runs skipped: {summary['generation']['skipped']}", flush=True)
    elif args.generation:
        print(f"[4/4] short audio-token generator runs ({' vs '.join(arms['generation'])} NLL)", flush=True)
        summary["generation"] = train_arms("demo-generation", arms["generation"], common, clock, "generation")
    from jobs.evaluation.demo_comparison import run_demo_comparison

    summary["evaluation"] = run_demo_comparison(summary["models"], summary["test_split"],
                                                uris.join(demo, "eval"),
                                                args.budget_minutes * 60 - clock.elapsed())
    clock.done("evaluation")
    summary["comparisons"] = summary["evaluation"].pop("comparisons")
    for arch, figures in summary["evaluation"]["models"].items():
        if arch in summary["models"] and "cer_without_updates" in figures:
            summary["models"][arch].update(cer_without_updates=figures["cer_without_updates"],
                                           fast_weight_change=figures["fast_weight_change"])
    summary["stage_seconds"] = clock.rounded(1)
    summary["total_seconds"] = round(clock.elapsed(), 1)
    summary["tracking_uri"] = tracking_uri()
    write_json(uris.join(demo, "summary.json"), summary)
    print(table(summary))
    print("\nWhere to look:")
    print(f"  summary         {uris.join(demo, 'summary.json')}")
    print(f"  MLflow UI       .venv/bin/mlflow ui --backend-store-uri {summary['tracking_uri']}"
          f"  (then http://127.0.0.1:5000, experiment lact-audio-demo)")
    print(f"  evaluate again  lact-audio evaluate --model {summary['models']['lact']['model_uri']} "
          f"--data {summary['test_split']}")
    print(f"  checkpoints     {uris.join(demo, 'train')}")
    print(f"  full report     {summary['evaluation']['report']}")
    return 0


def table(summary: dict) -> str:
    header = (f"{'model':<15}{'CER':>8}{'WER':>8}{'CER no TTT':>12}{'dW/W':>8}{'params':>11}"
              f"{'train s':>9}{'audio s/s':>11}")
    lines = ["", f"ASR on held-out voices ({summary['test_split']}):", header, "-" * len(header)]
    for arch, m in summary["models"].items():
        # CER no TTT: the same model with every test-time fast-weight update skipped; dW/W: the
        # mean relative fast-weight change over the test split (LaCT only)
        frozen = f"{m['cer_without_updates']:>12.3f}" if "cer_without_updates" in m else f"{'-':>12}"
        change = f"{m['fast_weight_change']:>8.3f}" if "fast_weight_change" in m else f"{'-':>8}"
        lines.append(f"{arch:<15}{m['cer']:>8.3f}{m['wer']:>8.3f}{frozen}{change}{m['params']:>11,}"
                     f"{m['train_seconds']:>9.0f}{m['throughput']:>11.1f}")
    if summary["generation"].get("skipped"):
        lines += ["", f"Audio-token generator: skipped ({summary['generation']['skipped']})"]
    elif summary["generation"]:
        lines += ["", "Audio-token generator (test NLL, bits/token):"]
        for arch, g in summary["generation"].items():
            lines.append(f"{arch:<15}{g['nll_bits']:>8.3f}  params {g['params']:,}  "
                         f"{g['train_seconds']:.0f} s")
    if summary.get("comparisons"):
        from jobs.evaluation.comparison import describe

        lines += ["", "Paired differences on the test utterances (95 % bootstrap interval):"]
        lines += [f"  {describe(c['a'], c['b'], metric, c['metrics'][metric])}"
                  for c in summary["comparisons"] for metric in ("cer", "wer") if metric in c["metrics"]]
    lines.append(f"\ntotal wall time {summary['total_seconds']:.0f} s")
    return "\n".join(lines)

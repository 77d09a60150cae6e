"""The demo's engine: the whole product on one machine (`lact-audio demo`, jobs/commands/demo.py).

    plan:   check the options before minutes of work, make the work directory
    data:   synthesise a small LibriSpeech-layout corpus (held-out voices in test-clean),
            preprocess it on Ray Data
    train:  three ASR models of the same size with the same budget on Ray Train (LaCT, the
            window-attention arm and full attention, each at its own tuned recipe:
            configs/demo-arms.yaml); a short LaCT vs full attention audio-token generator run
            when it still fits the budget
    finish: evaluate on the test split with paired-bootstrap intervals between every pair, print
            a comparison table and write <work dir>/demo/summary.json (all logged to MLflow)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from jobs.evaluation.comparison import describe
from jobs.evaluation.demo_comparison import run_demo_comparison
from jobs.runs.tracking import tracking_uri
from jobs.training.config import load_config
from jobs.training.run import run_training
from pipeline import uri as uris
from pipeline.errors import UserError
from pipeline.phase_timer import PhaseTimer
from pipeline.preprocess import PreprocessConfig, run_preprocess
from pipeline.ray_connection import connect
from pipeline.synthetic.corpus import synthesize_corpus
from pipeline.files import write_json

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@dataclass
class DemoOptions:
    hours: float = 1.0              # synthetic audio to make
    max_steps: int | None = None    # training steps of every run (None: the configs')
    data_only: bool = False         # stop after synthesis + preprocessing
    generation: bool = True         # the short audio-token generator comparison
    seed: int = 0
    budget_minutes: float = 20.0    # the generator runs only when it still fits

    def check(self) -> None:
        """Before minutes of synthesis, not after."""
        if not self.hours > 0:
            raise UserError("--hours must be > 0")
        if not self.budget_minutes > 0:
            raise UserError("--budget-minutes must be > 0")
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps must be >= 1, got {self.max_steps}")


@dataclass
class DemoPlace:
    """Where the demo works: <work dir>/demo."""

    root: str

    def __post_init__(self):
        self.raw, self.features = uris.join(self.root, "raw"), uris.join(self.root, "features")
        self.summary = uris.join(self.root, "summary.json")


def run_demo(options: DemoOptions) -> dict:
    """Returns the summary (also written to <work dir>/demo/summary.json)."""
    options.check()
    clock = PhaseTimer()
    place = DemoPlace(uris.join(uris.work_home(), "demo"))
    uris.ensure_writable(place.root, "demo work directory")
    summary = prepare_data(options, place, clock)
    if options.data_only:
        write_json(place.summary, summary, sort_keys=False)
        print(f"data ready: {place.features} (summary {place.summary})")
        return summary
    train_models(options, place, summary, clock)
    evaluate_models(options, place, summary, clock)
    finish(place, summary, clock)
    return summary


def prepare_data(options: DemoOptions, place: DemoPlace, clock: PhaseTimer) -> dict:
    """Synthesis and preprocessing; the summary's data part."""
    print(f"[1/4] synthesising {options.hours} h of speech into {place.raw}", flush=True)
    synth = synthesize_corpus("librispeech", place.raw, hours=options.hours, seed=options.seed,
                              progress=True)
    clock.done("synthesis")
    took = "reused" if synth.get("skipped") else f"{synth['elapsed_seconds']:.0f} s"
    print(f"      {synth['utterances']} utterances, {synth['hours']:.3f} h ({took})", flush=True)
    connect(None)  # one Ray for preprocessing and every training run
    print(f"[2/4] preprocessing into {place.features}", flush=True)
    prep = run_preprocess(PreprocessConfig(corpus="librispeech", input_uri=place.raw,
                                           output_uri=place.features, audio_tokens="mulaw",
                                           progress=False))
    clock.done("preprocessing")
    print(f"      written {prep['written']}, quarantined {prep['quarantined']}, "
          f"{prep['hours']:.3f} h in {prep['seconds']:.0f} s", flush=True)
    return {"work_dir": uris.work_home(), "corpus": place.raw, "features": place.features,
            "test_split": uris.join(place.features, "test-clean"),
            "data": {"utterances": prep["written"], "hours": prep["hours"],
                     "quarantined": prep["quarantined"]},
            "models": {}, "generation": {}, "stage_seconds": clock.rounded(1)}


def demo_arms() -> dict[str, dict[str, dict]]:
    """{"asr": {arm: overrides}, "generation": {...}} from configs/demo-arms.yaml."""
    return OmegaConf.to_container(OmegaConf.load(CONFIGS / "demo-arms.yaml"), resolve=True)


def train_models(options: DemoOptions, place: DemoPlace, summary: dict, clock: PhaseTimer) -> None:
    """The ASR arms, then the generator arms when the budget still has room for them."""
    common = [f"data.root={place.features}", f"output={uris.join(place.root, 'train')}",
              f"train.seed={options.seed}"]
    if options.max_steps is not None:
        common.append(f"train.max_steps={options.max_steps}")
    arms = demo_arms()
    print(f"[3/4] training {', '.join(arms['asr'])} ASR with the same budget", flush=True)
    summary["models"] = train_arms("demo-asr", arms["asr"], common, clock, "asr")
    if not options.generation:
        return
    # Last measured (README "Results", 900 ASR steps), the generator runs took 173 s after 763 s
    # of three ASR runs (0.23); a quarter of the ASR time leaves a margin for a slower machine.
    left = options.budget_minutes * 60 - clock.elapsed()
    needed = sum(clock.seconds[f"asr_{arch}"] for arch in arms["asr"]) / 4
    if left < needed:
        summary["generation"] = {"skipped": f"{max(left, 0):.0f} s of the {options.budget_minutes:g} min "
                                            f"budget left, about {needed:.0f} s needed"}
        print(f"[4/4] generator runs skipped: {summary['generation']['skipped']}", flush=True)
        return
    print(f"[4/4] short audio-token generator runs ({' vs '.join(arms['generation'])} NLL)", flush=True)
    summary["generation"] = train_arms("demo-generation", arms["generation"], common, clock, "generation")


def train_arms(config: str, arms: dict[str, dict], overrides: list[str], clock: PhaseTimer,
               stage: str) -> dict:
    """Each arm trained from one config with the same budget (and its own recipe overrides); per
    model its test metrics, size, speed and where it is (MLflow run, registered model)."""
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


def evaluate_models(options: DemoOptions, place: DemoPlace, summary: dict, clock: PhaseTimer) -> None:
    """The full evaluation suite of the ASR models within what is left of the budget; the paired
    comparisons and the LaCT model's test-time-update figures go into the summary."""
    summary["evaluation"] = run_demo_comparison(summary["models"], summary["test_split"],
                                                uris.join(place.root, "eval"),
                                                options.budget_minutes * 60 - clock.elapsed())
    clock.done("evaluation")
    summary["comparisons"] = summary["evaluation"].pop("comparisons")
    for arch, figures in summary["evaluation"]["models"].items():
        if arch in summary["models"] and "cer_without_updates" in figures:
            summary["models"][arch].update(cer_without_updates=figures["cer_without_updates"],
                                           fast_weight_change=figures["fast_weight_change"])


def finish(place: DemoPlace, summary: dict, clock: PhaseTimer) -> None:
    """summary.json, the table and where to look next."""
    summary["stage_seconds"] = clock.rounded(1)
    summary["total_seconds"] = round(clock.elapsed(), 1)
    summary["tracking_uri"] = tracking_uri()
    write_json(place.summary, summary, sort_keys=False)
    print(table(summary))
    print("\nWhere to look:")
    print(f"  summary         {place.summary}")
    print(f"  MLflow UI       .venv/bin/mlflow ui --backend-store-uri {summary['tracking_uri']}"
          f"  (then http://127.0.0.1:5000, experiment lact-audio-demo)")
    print(f"  evaluate again  lact-audio evaluate --model {summary['models']['lact']['model_uri']} "
          f"--data {summary['test_split']}")
    print(f"  checkpoints     {uris.join(place.root, 'train')}")
    print(f"  full report     {summary['evaluation']['report']}")


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
        lines += ["", "Paired differences on the test utterances (95 % bootstrap interval):"]
        lines += [f"  {describe(c['a'], c['b'], metric, c['metrics'][metric])}"
                  for c in summary["comparisons"] for metric in ("cer", "wer") if metric in c["metrics"]]
    lines.append(f"\ntotal wall time {summary['total_seconds']:.0f} s")
    return "\n".join(lines)

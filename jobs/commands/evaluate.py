"""`lact-audio evaluate --model MODEL [--model MODEL2 ...] --data URI [--report DIR] [--suite quick|long-form|full]`
   `lact-audio evaluate --study STUDY_DIR [--study ...] --data URI [--reference ARM]` (a Tune study's arms)

The suites live in jobs/evaluation/ (suite.py runs them); this module only reads the flags.
The flags' defaults are SuiteConfig's (tests/test_evaluate_cli.py holds them equal): torch is
not imported for `--help`.
"""

from __future__ import annotations

from pipeline.errors import UserError

HELP = ("evaluate trained models (checkpoint URIs or models:/name@alias) on a preprocessed split; "
        "--suite full adds long-form, streaming, adaptation, ablation, quantised, efficiency; "
        "--study evaluates a finished arms x seeds study")


def _numbers(flag: str, text, kind=float, allow_max: bool = False) -> list:
    """'60,300' -> [60.0, 300.0] (allow_max: the word max stays a word); a bad list is the
    user's mistake (one line, exit 2)."""
    if not isinstance(text, str):
        return list(text)
    try:
        return [x.strip() if allow_max and x.strip() == "max" else kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"{flag} expects comma-separated {'integers' if kind is int else 'numbers'}"
                        f"{' (or max)' if allow_max else ''}, "
                        f"got {text!r}") from None


def add_arguments(parser) -> None:
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--model", action="append",
                      help="checkpoint URI (local or s3://) or MLflow model URI models:/name@alias; "
                           "repeat for a side-by-side report")
    what.add_argument("--study", action="append",
                      help="a finished arms x seeds Tune study (<work dir>/tune/<name>): every completed "
                           "trial at its best checkpoint, each seed's arms side by side with the full suite (or --suite "
                           "long-form) "
                           "(generators: NLL by position), then pooled over the seeds with paired intervals "
                           "(jobs/tuning/study_eval.py); repeat to pool the same study run for other seeds")
    parser.add_argument("--reference", default=None,
                        help="with --study: the arm every other is compared with (default: the study's "
                             "search.reference)")
    parser.add_argument("--data", required=True, help="preprocessed split URI, e.g. OUT/test-clean")
    parser.add_argument("--report", default=None,
                        help="directory (local or s3://) for metrics.json, report.md and plots "
                             "(default: <work dir>/eval/<time>; with --study: the first study's eval/)")
    parser.add_argument("--suite", default=None,
                        help="quick (the default; with --study: full): CER/WER (or NLL) overall, per speaker "
                             "and language; long-form: quick plus long-form recordings (generators: NLL by "
                             "position) only, for a long test split; full: all suites")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-utterances", type=int, default=None,
                        help="evaluate only the first N utterances (speaker order)")
    sizes = parser.add_argument_group("full-suite sizes")
    add_suite_sizes(sizes)
    parser.add_argument("--bootstrap-seed", type=int, default=0,
                        help="seed of the paired-bootstrap intervals between models (default %(default)s)")
    parser.add_argument("--bootstrap-resamples", type=int, default=10000,
                        help="paired-bootstrap resamples (default %(default)s)")
    sizes.add_argument("--time-limit", type=float, default=600.0,
                       help="seconds one measurement may take before it is recorded as time_limit")


def config_from_args(args):
    from jobs.evaluation.suite import SuiteConfig

    lengths = _numbers("--long-form-seconds", args.long_form_seconds, allow_max=True)
    return SuiteConfig(
        suite=args.suite or "quick", beam_size=args.beam_size,
        long_form_seconds=[s for s in lengths if s != "max"], long_form_longest="max" in lengths,
        long_form_recordings=args.long_form_recordings, long_form_speakers=args.long_form_speakers,
        session_seconds=_numbers("--session-seconds", args.session_seconds),
        chained_state=args.chained_state,
        stream_seconds=args.stream_seconds, stream_chunk_frames=args.stream_chunk_frames,
        adaptation_counts=_numbers("--adaptation-counts", args.adaptation_counts, int),
        efficiency_seconds=_numbers("--efficiency-seconds", args.efficiency_seconds),
        efficiency_tokens=_numbers("--efficiency-tokens", args.efficiency_tokens, int),
        nll_position_bins=_numbers("--nll-position-bins", args.nll_position_bins, int),
        nll_sequences=args.nll_sequences, samples=args.samples, prompt_seconds=args.prompt_seconds,
        continuation_seconds=args.continuation_seconds,
        time_limit=args.time_limit, max_utterances=args.max_utterances, batch_size=args.batch_size,
        bootstrap_seed=args.bootstrap_seed, bootstrap_resamples=args.bootstrap_resamples)


def run(args) -> int:
    import json
    from datetime import datetime, timezone

    from jobs.evaluation.comparison import describe
    from jobs.evaluation.suite import run_suite
    from pipeline import uri as uris

    config = config_from_args(args)
    if args.study:
        from jobs.tuning.study_eval import evaluate_study

        config.suite = args.suite or "full"
        config.validate()
        return evaluate_study(args.study, args.data, args.report, args.reference, config)
    config.validate()   # before any model is loaded
    report = args.report or uris.join(uris.work_home(), "eval",
                                      datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S"))
    results = run_suite(args.model, args.data, report, config)
    headline = {label: {k: m.get(k) for k in ("cer", "wer", "nll_bits", "utterances") if k in m}
                for label, m in results["models"].items()}
    print(json.dumps(headline, indent=2))
    for pair in results.get("comparisons", []):   # several models: each pair's paired difference
        for metric, result in pair["metrics"].items():
            print(describe(pair["a"], pair["b"], metric, result))
    print(f"wrote {uris.join(uris.absolute(report), 'metrics.json')}")
    print(f"report {results['report']}")
    return 0


def add_suite_sizes(sizes) -> None:
    sizes.add_argument("--long-form-seconds", default="30,120,300,max",
                       help="long-form recording lengths; max: each chapter whole, the longest the split "
                            "allows (default %(default)s)")
    sizes.add_argument("--long-form-recordings", type=int, default=30,
                       help="long-form recordings per length, at most (default %(default)s)")
    sizes.add_argument("--long-form-speakers", type=int, default=10,
                       help="speakers wanted per long-form length; fewer is reported (default %(default)s)")
    sizes.add_argument("--stream-seconds", type=float, default=1800.0,
                       help="length of the long stream for streaming memory/latency (default %(default)s)")
    sizes.add_argument("--stream-chunk-frames", type=int, default=100,
                       help="feature frames per streaming chunk (default %(default)s = 1 s)")
    sizes.add_argument("--adaptation-counts", default="0,1,2,4,8",
                       help="adaptation utterance counts (default %(default)s)")
    sizes.add_argument("--session-seconds", default="10,40",
                       help="MIN,MAX seconds of the sessions decoded in one pass, cut as training cuts "
                            "its session rows (default %(default)s)")
    sizes.add_argument("--chained-state", default="trained",
                       help="chain one utterance's end state into the next: trained (only models whose "
                            "training carried state across utterances), always, never (default %(default)s)")
    sizes.add_argument("--efficiency-seconds", default="5,15,30,60",
                       help="ASR input lengths for latency/memory/FLOPs (default %(default)s)")
    sizes.add_argument("--efficiency-tokens", default="1024,2048,4096,8192",
                       help="generator input lengths in tokens (default %(default)s)")
    sizes.add_argument("--nll-position-bins", default="0,512,1024,2048,4096,8192,16384",
                       help="edges (tokens) of the generator NLL position bins; bins past the longest "
                            "sequence are omitted (default %(default)s)")
    sizes.add_argument("--nll-sequences", type=int, default=30,
                       help="long single-speaker sequences for NLL by position, at most (default %(default)s)")
    sizes.add_argument("--beam-size", type=int, default=8)
    sizes.add_argument("--samples", type=int, default=2, help="continuation samples per generator")
    sizes.add_argument("--prompt-seconds", type=float, default=0.5,
                       help="audio prompt of each continuation sample (default %(default)s)")
    sizes.add_argument("--continuation-seconds", type=float, default=0.5,
                       help="generated audio after each prompt (default %(default)s)")

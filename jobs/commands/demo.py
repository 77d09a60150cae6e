"""`lact-audio demo`: the whole product on one machine, no arguments needed (engine: jobs/demo.py).

Synthesise a small corpus, preprocess it on Ray Data, train LaCT, window-attention and
full-attention ASR models with the same budget on Ray Train, evaluate them with paired-bootstrap
intervals, log everything to MLflow, print a comparison table and write
<work dir>/demo/summary.json; a short audio-token generator comparison follows when
--generation is on (default).
"""

from __future__ import annotations

import argparse

HELP = ("end to end demo: synthesise, preprocess, train LaCT, window and full-attention ASR, "
        "evaluate, compare with intervals")


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


def run(args: argparse.Namespace) -> int:
    from jobs.demo import DemoOptions, run_demo   # torch, ray: not for `lact-audio --help`

    run_demo(DemoOptions(hours=args.hours, max_steps=args.max_steps, data_only=args.data_only,
                         generation=args.generation, seed=args.seed,
                         budget_minutes=args.budget_minutes))
    return 0

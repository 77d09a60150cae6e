"""`lact-audio tune --config configs/tune/NAME.yaml [key=value ...] [--name N] [--resume]`"""

from __future__ import annotations

HELP = "run a Ray Tune study (search space and ablation arms from YAML) of training runs"


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="study config (configs/tune/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="study config overrides, e.g. search.method=random "
                             "config.train.max_steps=200")
    parser.add_argument("--name", default=None, help="study name (default: the config's name:)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the interrupted study of this name; finished trials are kept")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")


def run(args) -> int:
    from jobs.tuning.config import load_study
    from jobs.tuning.study import run_study

    study = load_study(args.config, args.overrides, args.name)
    summary = run_study(study, resume=args.resume, address=args.address)
    return 130 if summary.get("interrupted") else 0

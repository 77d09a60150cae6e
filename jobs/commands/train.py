"""`lact-audio train --config configs/NAME.yaml [key=value ...]`"""

from __future__ import annotations

HELP = "train an ASR or audio-generation model (LaCT or baseline) on Ray Train"


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="YAML experiment config (configs/*.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. train.max_steps=200 data.batch_size=8")
    parser.add_argument("--resume", action="store_true",
                        help="continue the newest earlier run of this config's name from its "
                             "latest checkpoint")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")


def run(args) -> int:
    from jobs.training.config import load_config
    from jobs.training.run import run_training

    cfg = load_config(args.config, args.overrides)
    run_training(cfg, resume=args.resume, address=args.address)
    return 0

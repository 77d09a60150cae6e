"""`lact-audio nightly --config configs/nightly.yaml [key=value ...]`"""

from __future__ import annotations

HELP = ("retrain on new data: preprocess, fine-tune a challenger, compare it with the champion, "
        "move the champion alias when it wins by the margin")


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="nightly config (configs/nightly.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="key=value",
                        help="config overrides, e.g. promotion.margin=0.01 init=scratch "
                             "config.train.max_steps=50")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from jobs.retraining.config import load_nightly
    from jobs.retraining.run import run_nightly

    nightly = load_nightly(args.config, args.overrides)
    d = run_nightly(nightly, address=args.address, progress=not args.quiet)
    scores = (f" ({d['metric']}: challenger {d['challenger_score']:.4f}, champion "
              + (f"{d['champion_score']:.4f})" if d["champion_score"] is not None else "none)")
              if d["challenger_score"] is not None else "")
    print(f"nightly: {d['action']}: {d['reason']}{scores}; {d['registered_name']}@{d['alias']} "
          f"is version {d['serving_version']}; decision {d['decision_file']}")
    return 0

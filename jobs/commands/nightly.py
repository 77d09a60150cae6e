"""`lact-audio nightly [status|rollback] --config configs/nightly.yaml [key=value ...]`

    lact-audio nightly --config C            one night (preprocess, train, compare, maybe promote)
    lact-audio nightly status --config C     aliases, the last nights, alerts, test split, lock;
                                             exits 1 when the latest night failed the same way twice
    lact-audio nightly rollback --config C   champion back to previous-champion (the two swap)
"""

from __future__ import annotations

HELP = ("retrain on new data: preprocess, fine-tune a challenger, compare it with the champion, "
        "move the champion alias when it wins by the margin with an interval that excludes 0; "
        "`nightly status`, `nightly rollback`")
ACTIONS = ("status", "rollback")


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="nightly config (configs/nightly.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="[status|rollback] key=value",
                        help="status or rollback instead of a night, then config overrides, e.g. "
                             "promotion.margin=0.01 init=scratch config.train.max_steps=50")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def run(args) -> int:
    from jobs.nightly.config import load_nightly

    overrides = list(args.overrides)
    # The action is a bare word before the overrides (an override always has `=`).
    action = overrides.pop(0) if overrides and overrides[0] in ACTIONS else "night"
    nightly = load_nightly(args.config, overrides)
    if action == "status":
        from jobs.nightly.operations import status

        lines, alert = status(nightly)
        print("\n".join(lines))
        return 1 if alert else 0
    if action == "rollback":
        from jobs.nightly.operations import rollback

        d = rollback(nightly)
        print(f"nightly rollback: {d['registered_name']}@{d['alias']} is version {d['serving_version']} "
              f"(was {d['champion_version']}); @{d['previous_alias']} is version {d['champion_version']}; "
              f"decision {d['decision_file']}")
        return 0

    from jobs.nightly.run import run_nightly

    d = run_nightly(nightly, address=args.address, progress=not args.quiet)
    scores = (f" ({d['metric']}: challenger {d['challenger_score']:.4f}, champion "
              + (f"{d['champion_score']:.4f})" if d["champion_score"] is not None else "none)")
              if d["challenger_score"] is not None else "")
    print(f"nightly: {d['action']}: {d['reason']}{scores}; {d['registered_name']}@{d['alias']} "
          f"is version {d['serving_version']}; decision {d['decision_file']}")
    return 0

"""`lact-audio <command>`: one sub-command per module in jobs/.

Each command module defines HELP, add_arguments(parser) and run(args) -> int, and imports its
heavy dependencies (torch, ray) inside run() so that `lact-audio --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from pipeline.errors import UserError

# command name -> module in jobs/
COMMANDS = {
    "preprocess": "jobs.commands.preprocess",
    "synth": "jobs.commands.synth",
    "train": "jobs.commands.train",
    "tune": "jobs.commands.tune",
    "evaluate": "jobs.commands.evaluate",
    "demo": "jobs.commands.demo",
    "submit": "jobs.commands.submit",
    "jobs": "jobs.commands.job_control",
    "cluster": "jobs.commands.cluster",
    "nightly": "jobs.commands.nightly",
    "transcribe": "jobs.commands.transcribe",
    "serve": "jobs.commands.serve",
    "generate": "jobs.commands.generate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lact-audio",
        description="Train and evaluate LaCT speech models on Ray (see README.md).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = commands.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except UserError as exc:
        print(f"lact-audio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lact-audio {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

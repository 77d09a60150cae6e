"""`lact-audio submit {preprocess|train|tune|evaluate|nightly} [args...] [--address URL] [--wait]`:
run a lact-audio command as a Ray job on a cluster (Ray's Jobs API).

The job's entrypoint is the same command line (`lact-audio train --config ...`), checked here with
the CLI's own parser before anything is sent. The project folder travels as the job's working_dir
(so configs/ and the code are the submitter's). Settings and credentials are the cluster's own;
`--env NAME[=VALUE]` sends a non-secret setting (pipeline/ray_connection.py refuses credentials).
Inside the job, Ray sets RAY_ADDRESS, so the command joins the cluster.
Paths are resolved on the cluster: use s3:// URIs for data and outputs, or absolute paths on a local cluster.
"""

from __future__ import annotations

import argparse
import shlex

from jobs.cli import COMMANDS, build_parser
from jobs.cluster import jobs_api
from pipeline.errors import UserError
from pipeline.ray_connection import job_client, sendable_env

HELP = "run preprocess / train / tune / evaluate / nightly as a Ray job on a cluster"
JOB_KINDS = ("preprocess", "train", "tune", "evaluate", "nightly")
OWN_OPTIONS = {"--address": True, "--wait": False, "--env": True}   # option -> takes a value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kind", choices=JOB_KINDS, metavar="KIND", help=" | ".join(JOB_KINDS))
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="the command's own arguments, as for `lact-audio KIND`")
    parser.add_argument("--address", default=None,
                        help="Ray Jobs API (dashboard) URL, e.g. http://127.0.0.1:8265 "
                             "(default: $RAY_API_SERVER_ADDRESS, else an http $RAY_ADDRESS)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]",
                        help="send this setting with the job (this shell's value, or VALUE); repeatable. "
                             "Nothing else is sent: the job sees the cluster's settings. Credentials are "
                             "refused: give them to the cluster (pod Secrets, the nodes' environment)")
    parser.add_argument("--wait", action="store_true",
                        help="follow the job's logs until it ends; exit 0 only if it SUCCEEDED")


def split_own_options(args: argparse.Namespace) -> list[str]:
    """`--address`/`--env`/`--wait` after KIND are submit's (the command inside the job joins the cluster
    through RAY_ADDRESS); returns the command's own arguments."""
    rest, items = [], list(args.args)
    while items:
        item = items.pop(0)
        name, _, value = item.partition("=")
        if name not in OWN_OPTIONS:
            rest.append(item)
        elif not OWN_OPTIONS[name]:
            setattr(args, name[2:], True)
        else:
            if not value:
                if not items:
                    raise UserError(f"{name} needs a value")
                value = items.pop(0)
            if name == "--env":
                args.env = [*getattr(args, "env", []), value]
            else:
                setattr(args, name[2:], value)
    return rest


def entrypoint(kind: str, command_args: list[str]) -> str:
    """The job's shell command, after checking the arguments with the CLI's parser (argparse exits 2
    with its usage line on a mistake, before anything is submitted)."""
    if kind in COMMANDS:  # nightly is checked once its command exists
        build_parser().parse_args([kind, *command_args])
    return shlex.join(["lact-audio", kind, *command_args])


def run(args: argparse.Namespace) -> int:
    command = entrypoint(args.kind, split_own_options(args))
    env_vars = sendable_env(getattr(args, "env", []))   # refused before anything is sent
    client = job_client(args.address)
    job_id = jobs_api.submit(client, args.kind, command, env_vars)
    print(f"submitted {job_id}: {command}", flush=True)
    if not args.wait:
        print(f"follow it with: lact-audio jobs logs {job_id} --follow")
        return 0
    info = jobs_api.follow_to_end(client, job_id)
    print(f"{job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
    return 0 if info.status.value == "SUCCEEDED" else 1

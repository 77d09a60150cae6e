"""`lact-audio cluster up [--workers N] [--s3] | down | status`: a local multi-node stack (Ray head and
workers with token auth, an MLflow server, optionally an S3 server) on loopback; see jobs/cluster/local.py."""

from __future__ import annotations

import argparse
import json
import sys

HELP = "start, inspect or stop a local multi-node stack (Ray + MLflow server + S3 server) on loopback"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    up = actions.add_parser("up", help="start the stack; prints the exports that point lact-audio at it")
    up.add_argument("--workers", type=int, default=1, help="Ray worker nodes besides the head (default 1)")
    up.add_argument("--s3", action="store_true",
                    help="also start an S3 server (moto) with a bucket 'lact-audio'; MLflow artifacts go there")
    actions.add_parser("status", help="which of the stack's processes are alive; its exports")
    actions.add_parser("down", help="stop exactly the processes `up` started")


def run(args: argparse.Namespace) -> int:
    from jobs.cluster import local as local_cluster

    if args.action == "up":
        print(f"starting a Ray head, {args.workers} worker node(s), MLflow{' and S3' if args.s3 else ''} ...",
              file=sys.stderr, flush=True)
        state = local_cluster.up(args.workers, args.s3)
        # Exports on stdout (so `eval "$(lact-audio cluster up)"` works), the rest on stderr.
        print("\n".join(local_cluster.exports(state)))
        print(f"# Ray dashboard: {state['dashboard_url']}   MLflow UI: {state['mlflow_uri']}\n"
              f"# state: {local_cluster.cluster_dir() / local_cluster.STATE_FILE}; "
              "stop with `lact-audio cluster down`", file=sys.stderr)
        return 0
    if args.action == "status":
        state = local_cluster.status()
        print(json.dumps({k: state[k] for k in ("ray_address", "dashboard_url", "mlflow_uri", "s3_endpoint",
                                                 "token_file", "alive", "ray_nodes_alive")}, indent=2))
        print("\n".join(local_cluster.exports(state)))
        return 0 if all(state["alive"].values()) else 1
    stopped = local_cluster.down()
    print(f"stopped {len(stopped['stopped_pids'])} process(es): {stopped['stopped_pids']}")
    return 0

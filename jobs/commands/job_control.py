"""`lact-audio jobs list | status ID | logs ID [--follow] | stop ID`: watch and stop the Ray jobs of a
cluster through Ray's Jobs API. They are ordinary Ray jobs: `ray job list|logs|stop` sees the same."""

from __future__ import annotations

import argparse
import time

from jobs.cluster.jobs_api import api_call, follow_logs
from pipeline.ray_connection import job_client

HELP = "list, inspect, follow or stop Ray jobs on a cluster (Ray Jobs API)"


def add_address_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", default=None,
                        help="Ray Jobs API (dashboard) URL, e.g. http://127.0.0.1:8265 "
                             "(default: $RAY_API_SERVER_ADDRESS, else an http $RAY_ADDRESS)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_address_argument(actions.add_parser("list", help="every job of the cluster, oldest first"))
    for name, text in (("status", "a job's status and message"), ("logs", "a job's driver log"),
                       ("stop", "stop a running job")):
        sub = actions.add_parser(name, help=text)
        sub.add_argument("job_id", metavar="ID", help="submission id (as `lact-audio submit` printed it)")
        add_address_argument(sub)
        if name == "logs":
            sub.add_argument("--follow", action="store_true", help="keep printing until the job ends")


def _time(ms: int | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ms / 1000)) if ms else "-"


def run(args: argparse.Namespace) -> int:
    client = job_client(args.address)
    if args.action == "list":
        jobs = sorted(api_call("listing jobs", client.list_jobs), key=lambda j: j.start_time or 0)
        print(f"{'ID':<40} {'STATUS':<10} {'STARTED':<19}  ENTRYPOINT")
        for job in jobs:
            print(f"{job.submission_id or job.job_id:<40} {job.status.value:<10} {_time(job.start_time):<19}  "
                  f"{job.entrypoint}")
        return 0
    info = api_call(f"job {args.job_id}", client.get_job_info, args.job_id)
    if args.action == "status":
        print(f"{args.job_id}: {info.status.value}" + (f" ({info.message})" if info.message else ""))
        print(f"  started {_time(info.start_time)}, ended {_time(info.end_time)}\n  entrypoint: {info.entrypoint}")
        return 0
    if args.action == "logs":
        if args.follow:
            follow_logs(client, args.job_id)
        else:
            print(api_call(f"logs of {args.job_id}", client.get_job_logs, args.job_id), end="")
        return 0
    stopped = api_call(f"stopping {args.job_id}", client.stop_job, args.job_id)
    print(f"{args.job_id}: {'stop requested' if stopped else 'not running (' + info.status.value + ')'}")
    return 0

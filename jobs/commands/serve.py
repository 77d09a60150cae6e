"""`lact-audio serve --model models:/NAME@champion [--port 8000] [--replicas N]`: the model on Ray
Serve (POST /v1/transcribe, GET /healthz), following its alias. The deployment is in
jobs/inference/serving.py, the foreground session in jobs/inference/serving_session.py."""

from __future__ import annotations

from pipeline.errors import UserError

HELP = ("serve an ASR model on Ray Serve: POST /v1/transcribe (audio bytes or multipart) -> JSON with "
        "segments, GET /healthz; a models:/NAME@alias model follows its alias")


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True,
                        help="models:/NAME@alias (followed when it moves), models:/NAME/N, runs:/ or a checkpoint URI")
    parser.add_argument("--data", default=None,
                        help="split whose manifest gives features and tokenizer (default: the model's own)")
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default loopback)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", default=None, help="Ray cluster to deploy on (default: $RAY_ADDRESS or local)")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--cpus-per-replica", type=float, default=1.0)
    parser.add_argument("--gpus-per-replica", type=float, default=0.0)
    parser.add_argument("--max-batch-size", type=int, default=8, help="requests decoded together (serve.batch)")
    parser.add_argument("--batch-wait", type=float, default=0.05, metavar="SECONDS",
                        help="how long a batch waits to fill")
    parser.add_argument("--poll", type=float, default=30.0, metavar="SECONDS",
                        help="how often replicas check whether the alias has moved")
    parser.add_argument("--beam", type=int, default=1, metavar="N", help="CTC prefix beam search width")
    parser.add_argument("--window", type=float, default=20.0, metavar="SECONDS",
                        help="window for models that cannot stream")
    parser.add_argument("--overlap", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument("--detach", action="store_true",
                        help="return once deployed and leave the application running on the cluster")


def config_from_args(args):
    from jobs.inference.recognizer import WindowConfig
    from jobs.inference.serving import ServeConfig
    from jobs.inference.serving_session import replica_env

    if args.replicas < 1 or args.max_batch_size < 1 or args.beam < 1:
        raise UserError("--replicas, --max-batch-size and --beam must be >= 1")
    if args.poll <= 0 or args.batch_wait < 0:
        raise UserError("--poll must be > 0 and --batch-wait >= 0")
    windows = WindowConfig(args.window, args.overlap)
    try:
        windows.frames(100.0)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return ServeConfig(model=args.model, data=args.data, replicas=args.replicas,
                       cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
                       max_batch_size=args.max_batch_size, batch_wait_s=args.batch_wait,
                       poll_seconds=args.poll, beam_size=args.beam if args.beam > 1 else None,
                       windows=windows, env=replica_env())


def run(args) -> int:
    """Blocks until Ctrl-C or SIGTERM: then the application is deleted, a Ray started here is shut
    down, and the CLI exits 130 ("interrupted")."""
    import os

    from jobs.inference.serving_session import serve_until_stopped

    config = config_from_args(args)
    if args.detach and not (args.address or os.environ.get("RAY_ADDRESS")):
        raise UserError("--detach needs a cluster (--address or RAY_ADDRESS): a Ray started here stops with the command")
    serve_until_stopped(config, args.address, args.host, args.port, args.detach)
    return 0

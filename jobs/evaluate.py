"""`lact-audio evaluate --model MODEL --data URI [--report DIR]`"""

from __future__ import annotations

HELP = "evaluate a trained model (checkpoint URI or models:/name@alias) on a preprocessed split"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True,
                        help="checkpoint URI (local or s3://) or MLflow model URI models:/name@alias")
    parser.add_argument("--data", required=True, help="preprocessed split URI, e.g. OUT/test-clean")
    parser.add_argument("--report", default=None,
                        help="directory (local or s3://) for metrics.json (default: <work dir>/eval/<time>)")
    parser.add_argument("--batch-size", type=int, default=32)


def run(args) -> int:
    import json
    from datetime import datetime, timezone

    from jobs.training.evaluation import evaluate
    from jobs.training.model_io import load_model
    from jobs.training.run import write_json
    from jobs.training.tasks import task_named
    from pipeline import uri as uris
    from pipeline.errors import UserError
    from pipeline.loading import LocalLoader

    if args.batch_size <= 0:
        raise UserError("--batch-size must be > 0")
    report = uris.absolute(args.report or uris.join(
        uris.work_home(), "eval", datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")))
    uris.ensure_writable(report, "report directory")
    loader_probe = uris.absolute(args.data)
    uris.require_exists(loader_probe, "data split")
    model, meta = load_model(args.model)
    task = task_named(meta["task"])
    loader = LocalLoader(loader_probe, batch_size=args.batch_size, task=task.name, shuffle=False)
    tokenizer = task.tokenizer(loader.manifest, loader.split.uri)
    metrics = evaluate(model, loader.epoch(0), task, tokenizer)
    metrics.update(model=args.model, data=loader.split.uri, task=task.name,
                   architecture=meta.get("architecture"),
                   data_content_hash=loader.split.content_hash)
    write_json(uris.join(report, "metrics.json"), metrics)
    print(json.dumps(metrics, indent=2))
    print(f"wrote {uris.join(report, 'metrics.json')}")
    return 0

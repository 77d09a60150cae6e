"""`lact-audio preprocess`: raw LibriSpeech / Common Voice -> Ray Data -> sharded log-mel features."""

from __future__ import annotations

import argparse
import json

HELP = "Decode, validate and featurise a corpus on Ray into Parquet shards + manifests"


def _list(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--corpus", required=True, help="librispeech | commonvoice")
    parser.add_argument("--input", required=True, help="corpus root: local path or s3://bucket/prefix")
    parser.add_argument("--output", required=True, help="output root: local path or s3://bucket/prefix")
    parser.add_argument("--splits", nargs="+", default=None,
                        help="splits (default: all), e.g. train-clean-100 dev-clean (commas work too)")
    parser.add_argument("--languages", type=_list, default=None, help="Common Voice languages, e.g. en,de")
    parser.add_argument("--audio-tokens", default=None, help="also write audio tokens: mulaw | kmeans")
    parser.add_argument("--text-tokenizer", default="char", help="char (default) | bpe")
    parser.add_argument("--bpe-vocab-size", type=int, default=256)
    parser.add_argument("--mulaw-rate", type=int, default=4000, help="μ-law token rate in Hz (default 4000)")
    parser.add_argument("--kmeans-clusters", type=int, default=256)
    parser.add_argument("--max-seconds", type=float, default=35.0, help="longer utterances are quarantined")
    parser.add_argument("--min-seconds", type=float, default=0.1, help="shorter utterances are quarantined")
    parser.add_argument("--rows-per-shard", type=int, default=64)
    parser.add_argument("--address", default=None,
                        help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray started here)")
    parser.add_argument("--quiet", action="store_true", help="no progress output")


def config_from_args(args: argparse.Namespace):
    """The flags as a PreprocessConfig; their defaults are its defaults (a test holds them equal:
    torch is not imported for `--help`)."""
    from pipeline.preprocess import PreprocessConfig

    return PreprocessConfig(
        corpus=args.corpus, input_uri=args.input, output_uri=args.output,
        splits=[s for value in args.splits for s in _list(value)] if args.splits else None,
        languages=args.languages, audio_tokens=args.audio_tokens, text_tokenizer=args.text_tokenizer,
        bpe_vocab_size=args.bpe_vocab_size, mulaw_rate=args.mulaw_rate, kmeans_clusters=args.kmeans_clusters,
        max_seconds=args.max_seconds, min_seconds=args.min_seconds, rows_per_shard=args.rows_per_shard,
        progress=not args.quiet,
    )


def run(args: argparse.Namespace) -> int:
    from pipeline.preprocess import run_preprocess

    summary = run_preprocess(config_from_args(args), address=args.address)
    brief = {k: summary[k] for k in ("inputs", "written", "quarantined", "quarantined_by_reason", "repaired",
                                      "hours", "shards_written", "shards_skipped", "seconds", "output")}
    print(json.dumps(brief, indent=2))
    return 0

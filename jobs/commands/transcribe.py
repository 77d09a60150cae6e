"""`lact-audio transcribe --model M AUDIO... [--format txt|json|srt|vtt] [--output-dir DIR]`
and, for a corpus on Ray Data, `lact-audio transcribe --model M --input DIR --output X.parquet`.

The engines are in jobs/inference/ (file_outputs.py for files, batch.py for Ray Data).
"""

from __future__ import annotations

import sys

from pipeline.errors import UserError

HELP = ("transcribe audio with a trained ASR model: files/folders/globs/s3:// to txt, json, srt or vtt; "
        "or a whole corpus on Ray Data to a Parquet table (--input/--output), resumable")


def add_arguments(parser) -> None:
    parser.add_argument("audio", nargs="*", metavar="AUDIO",
                        help="audio files, folders, globs or s3:// URIs (any format soundfile reads)")
    parser.add_argument("--model", required=True,
                        help="checkpoint URI (local or s3://) or MLflow model URI, e.g. models:/asr@champion")
    parser.add_argument("--data", default=None,
                        help="the preprocessed split whose manifest gives features, CMVN and tokenizer "
                             "(default: the split the model was evaluated on during training)")
    parser.add_argument("--format", default="txt", choices=["txt", "json", "srt", "vtt"])
    parser.add_argument("--output-dir", default=None,
                        help="write <name>.<format> per input here (default: print to stdout)")
    parser.add_argument("--beam", type=int, default=1, metavar="N",
                        help="CTC prefix beam search with N beams (default 1: greedy)")
    parser.add_argument("--window", type=float, default=20.0, metavar="SECONDS",
                        help="window length for models that cannot stream (bidirectional, full attention)")
    parser.add_argument("--overlap", type=float, default=2.0, metavar="SECONDS",
                        help="overlap between consecutive windows")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    batch = parser.add_argument_group("batch transcription on Ray Data")
    batch.add_argument("--input", default=None,
                       help="a corpus (LibriSpeech or Common Voice layout) or any folder of audio, local or s3://")
    batch.add_argument("--output", default=None,
                       help="the Parquet table to write (local or s3://); <output>.parts/ holds finished "
                            "batches so that a rerun resumes")
    batch.add_argument("--address", default=None, help="Ray cluster to join (default: $RAY_ADDRESS or local)")
    batch.add_argument("--num-actors", type=int, default=1, help="model replicas (Ray actors)")
    batch.add_argument("--num-gpus-per-actor", type=float, default=0.0)
    batch.add_argument("--num-cpus-per-actor", type=float, default=1.0)
    batch.add_argument("--batch-size", type=int, default=8, help="files per batch (and per part file)")


def decode_options(args):
    from jobs.inference.recognizer import WindowConfig
    from jobs.inference.transcriber import DecodeOptions

    if args.beam < 1:
        raise UserError(f"--beam must be >= 1, got {args.beam}")
    windows = WindowConfig(args.window, args.overlap)
    try:
        windows.frames(100.0)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return DecodeOptions(beam_size=args.beam if args.beam > 1 else None, windows=windows,
                         progress=not args.no_progress)


def transcribe_listed(args) -> int:
    """AUDIO files, folders and globs: each unreadable input named on stderr; exit 1 if any."""
    from jobs.inference import inputs
    from jobs.inference.file_outputs import transcribe_files

    files, problems = inputs.expand(args.audio)
    for line in problems:
        print(f"lact-audio transcribe: {line}", file=sys.stderr)
    options = decode_options(args)
    if not files:
        return 1
    failed = transcribe_files(files, args.model, args.data, options, args.format, args.output_dir)
    return 1 if failed or problems else 0


def run(args) -> int:

    if args.input or args.output:
        if not (args.input and args.output):
            raise UserError("batch transcription needs both --input and --output")
        if args.audio:
            raise UserError("give AUDIO files or --input/--output, not both")
        from jobs.inference.batch import BatchConfig, run_batch

        options = decode_options(args)
        summary = run_batch(BatchConfig(
            model=args.model, data=args.data, input=args.input, output=args.output, address=args.address,
            num_actors=args.num_actors, num_gpus_per_actor=args.num_gpus_per_actor,
            num_cpus_per_actor=args.num_cpus_per_actor, batch_size=args.batch_size,
            beam_size=options.beam_size, windows=options.windows))
        print(summary.line())
        return 1 if summary.failed else 0
    if not args.audio:
        raise UserError("nothing to transcribe: give AUDIO files, or --input and --output for a corpus")
    return transcribe_listed(args)

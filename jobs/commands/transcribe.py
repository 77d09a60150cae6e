"""`lact-audio transcribe --model M AUDIO... [--format txt|json|srt|vtt] [--output-dir DIR]`
and, for a corpus on Ray Data, `lact-audio transcribe --model M --input DIR --output X.parquet`.

The engines are in jobs/inference/ (transcriber.py for files, batch.py for Ray Data).
"""

from __future__ import annotations

import sys

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
    from pipeline.errors import UserError

    if args.beam < 1:
        raise UserError(f"--beam must be >= 1, got {args.beam}")
    windows = WindowConfig(args.window, args.overlap)
    try:
        windows.frames(100.0)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return DecodeOptions(beam_size=args.beam if args.beam > 1 else None, windows=windows,
                         progress=not args.no_progress)


def _output_path(output_dir: str, uri: str, fmt: str, used: set[str]) -> str:
    """<dir>/<file name without extension>.<fmt>; a repeated name gets -2, -3, ..."""
    from pipeline import uri as uris

    stem = uri.rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    name, n = f"{stem}.{fmt}", 1
    while name in used:
        n += 1
        name = f"{stem}-{n}.{fmt}"
    used.add(name)
    return uris.join(output_dir, name)


def transcribe_files(args) -> int:
    from jobs.inference import inputs
    from jobs.inference.model import ASR, load
    from jobs.inference.transcriber import transcribe
    from jobs.inference.writers import render
    from pipeline import uri as uris
    from pipeline.audio import AudioError
    from pipeline.shards import write_atomic

    files, problems = inputs.expand(args.audio)
    for line in problems:
        print(f"lact-audio transcribe: {line}", file=sys.stderr)
    options = decode_options(args)
    if not files:
        return 1
    model = load(args.model, args.data).require(ASR)
    tokenizer = model.text_tokenizer()
    if args.output_dir:
        uris.ensure_writable(uris.absolute(args.output_dir), "--output-dir")
    failed, used = len(problems), set()
    for uri in files:
        try:
            result = transcribe(model, uri, options, tokenizer=tokenizer)
        except AudioError as exc:
            print(f"lact-audio transcribe: {uri}: {exc}", file=sys.stderr)
            failed += 1
            continue
        text = render(result, args.format)
        if args.output_dir:
            target = _output_path(uris.absolute(args.output_dir), uri, args.format, used)
            write_atomic(target, text.encode())
            print(target)
        else:
            sys.stdout.write(text)
            sys.stdout.flush()
    return 1 if failed else 0


def run(args) -> int:
    from pipeline.errors import UserError

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
    return transcribe_files(args)

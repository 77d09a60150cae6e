"""`lact-audio synth`: write a synthetic speech corpus (espeak-ng, optionally Festival) in the
LibriSpeech or Common Voice layout, to a local directory or an s3:// URI; optionally recorded in
drawn acoustic conditions and with long chapters."""

from __future__ import annotations

import argparse
import json

from pipeline.errors import UserError

HELP = "synthesise a speech corpus (espeak-ng, optionally Festival) in the LibriSpeech or Common Voice layout"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--layout", required=True, choices=["librispeech", "commonvoice"],
                        help="on-disk layout to write")
    parser.add_argument("--out", required=True, help="output directory: local path or s3://bucket/prefix")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--hours", type=float, default=1.0,
                      help="total hours of audio (split 80/10/10 into train/dev/test; shared among languages)")
    size.add_argument("--utterances-per-split", type=int, default=None,
                      help="exactly N utterances per split (and language) instead of --hours; for tests")
    parser.add_argument("--languages", default=None,
                        help="comma-separated languages for --layout commonvoice (default en,de,fr,es; "
                             "available en,de,fr,es,it); LibriSpeech is English")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same corpus (default 0)")
    parser.add_argument("--conditions", action="store_true",
                        help="record each session (a LibriSpeech chapter, a Common Voice client) in seeded "
                             "acoustic conditions: band (full, wideband, telephone 300-3400 Hz) and tilt, noise "
                             "(white, pink, babble of other voices) at 5-30 dB SNR, reverberation (dry, room, "
                             "hall), gain; dev/test hear (band, noise, reverb) combinations training never hears; "
                             "written to ROOT/conditions.tsv (default: clean)")
    parser.add_argument("--minutes-per-chapter", type=float, default=None, metavar="M",
                        help="each speaker reads one chapter of about M minutes (needs --hours; default: "
                             "~20 s per speaker, as many voices as possible)")
    parser.add_argument("--test-minutes-per-chapter", type=float, default=None, metavar="M",
                        help="the same for the test split only, e.g. 10 for long-form test recordings "
                             "(default: --minutes-per-chapter)")
    parser.add_argument("--test-hours", type=float, default=None, metavar="H",
                        help="hours of the test split (default: 10 %% of --hours); train and dev stay as they "
                             "are while the test speakers' number (H / its minutes per chapter) is unchanged, "
                             "e.g. a long-form test split for a corpus models were trained on")
    parser.add_argument("--engines", default=None, metavar="LIST",
                        help="comma-separated speech engines: espeak-ng (or espeak), festival (English only; "
                             "Debian's festival and festvox-* voices) (default espeak-ng)")
    parser.add_argument("--held-out-engines", default=None, metavar="LIST",
                        help="engines of --engines heard in dev and test only, e.g. festival")
    parser.add_argument("--workers", type=int, default=None, help="processes rendering audio (default: all cores)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the synthetic corpus in --out even if made with other settings "
                             "(a non-empty directory that is not a synthetic corpus is always refused)")
    parser.add_argument("--json", action="store_true", help="print the full summary as JSON")


def run(args: argparse.Namespace) -> int:
    from pipeline.synthetic import Voicing, parse_engines, synthesize_corpus

    languages = [lang.strip() for lang in args.languages.split(",") if lang.strip()] if args.languages else None
    if args.workers is not None and args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    voicing = Voicing(
        engines=parse_engines(args.engines),
        held_out_engines=parse_engines(args.held_out_engines) if args.held_out_engines else (),
        minutes_per_chapter=args.minutes_per_chapter, test_minutes_per_chapter=args.test_minutes_per_chapter,
        test_hours=args.test_hours,
    )
    summary = synthesize_corpus(
        args.layout, args.out, hours=args.hours, languages=languages, seed=args.seed,
        utterances_per_split=args.utterances_per_split, workers=args.workers, overwrite=args.overwrite,
        progress=True, conditions=args.conditions, voicing=voicing,
    )
    if args.json:
        print(json.dumps(summary, indent=1, sort_keys=True))
        return 0
    state = "already there (same settings), nothing to do" if summary["skipped"] else (
        f"{summary['elapsed_seconds']:.1f} s on {summary['workers']} worker(s)")
    print(f"{summary['layout']} corpus at {summary['out_uri']}: {summary['utterances']} utterances, "
          f"{summary['hours']:.3f} h, {len(summary['speakers'])} speakers, seed {summary['seed']} — {state}")
    for split, entry in summary["splits"].items():
        print(f"  {split:<16} {entry['utterances']:>6} utterances {entry['hours']:>8.3f} h {entry['speakers']:>4} speakers")
    if "conditions" in summary:
        print(f"  conditions of {sum(summary['conditions']['sessions'].values())} sessions in "
              f"{summary['conditions']['table']}")
    return 0

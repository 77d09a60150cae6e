"""`lact-audio generate --model M [--prompt-audio WAV] --seconds S --out OUT.wav [--stream]`: audio
from a trained generator (engine: jobs/inference/generation.py)."""

from __future__ import annotations

from pipeline.errors import UserError

HELP = "generate audio with a trained generator (continuing --prompt-audio, or from silence)"


def add_arguments(parser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint URI or models:/NAME@alias of a generator")
    parser.add_argument("--data", default=None,
                        help="split whose manifest gives the audio tokenizer (default: the model's own)")
    parser.add_argument("--prompt-audio", default=None, help="audio to continue (any format and rate)")
    parser.add_argument("--seconds", type=float, required=True, help="seconds of audio to generate")
    parser.add_argument("--out", required=True, help="the WAV to write (local or s3://; local with --stream)")
    parser.add_argument("--temperature", type=float, default=1.0, help="0: greedy")
    parser.add_argument("--top-k", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream", action="store_true", help="write the WAV as the tokens are sampled")
    parser.add_argument("--include-prompt", action="store_true", help="start the WAV with the prompt")


def run(args) -> int:
    from jobs.inference.generation import GenerateOptions, generate
    from jobs.inference.model import load
    from jobs.tasks import GENERATION
    from pipeline import uri as uris

    if args.temperature < 0 or (args.top_k is not None and args.top_k < 1):
        raise UserError("--temperature must be >= 0 and --top-k >= 1")
    model = load(args.model, args.data).require(GENERATION)
    out = uris.absolute(args.out)
    info = generate(model, out, GenerateOptions(
        seconds=args.seconds, temperature=args.temperature, top_k=args.top_k, seed=args.seed,
        stream=args.stream, include_prompt=args.include_prompt), args.prompt_audio)
    print(f"wrote {out}: {info['seconds']:.2f} s at {info['sample_rate']} Hz "
          f"({info['tokens']} tokens after a {info['prompt_tokens']}-token prompt)")
    return 0

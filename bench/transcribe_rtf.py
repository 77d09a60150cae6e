"""Real-time factor and peak memory of `lact-audio transcribe` against recording length, on one core.

Series: the block-causal LaCT model (streams with its LaCTState) and the full-attention baseline
(windows of --window seconds), both of the small demo size, untrained (bench/inference_models.py)
unless --model NAME=URI is given. LaCT's cost should grow linearly with the length and its memory
stay flat; the windowed baseline is linear too, at the price of windows (a single full-attention
pass would be quadratic).

Method (written into the JSON): each point runs in a fresh process pinned to one CPU with one torch
thread; the recording (PCM_16 WAV) is written beforehand; time is transcribe() alone after the
model is loaded (decode + features + model + CTC segmentation + alignment); peak memory is the
process's VmHWM minus its VmRSS just before transcribing (high-water mark reset first); load
average before and after each point is recorded, since the machine may be shared.

    .venv/bin/python bench/transcribe_rtf.py                         # 10 s .. 30 min, both series
    .venv/bin/python bench/transcribe_rtf.py --lengths 5 10 --out /tmp/rtf.json   # a quick check
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def worker(model_uri: str, wav: str, window: float) -> dict:
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    import torch

    torch.set_num_threads(1)
    from jobs.inference.model import load
    from jobs.inference.recognizer import WindowConfig
    from jobs.inference.transcriber import DecodeOptions, transcribe

    model = load(model_uri)
    options = DecodeOptions(windows=WindowConfig(window, 2.0))
    transcribe(model, wav.replace(".wav", "-warmup.wav"), options)   # first-call setup not timed
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    t = transcribe(model, wav, options)
    wall = time.perf_counter() - start
    return {"wall_s": round(wall, 3), "audio_s": round(t.duration, 2), "rtf": round(wall / t.duration, 5),
            "peak_extra_mb": round((_status_kb("VmHWM") - before) / 1024, 1),
            "rss_before_mb": round(before / 1024, 1), "segments": len(t.segments), "streams": model.streams}


def write_recording(path: str, seconds: float) -> None:
    import soundfile as sf

    from bench.inference_models import synthetic_speech

    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as f:
        for start in range(0, int(seconds), 60):      # a minute at a time: the bench stays small too
            f.write(synthetic_speech(min(60.0, seconds - start), seed=start))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lengths", type=float, nargs="+", default=[10, 60, 300, 900, 1800])
    parser.add_argument("--series", nargs="+", default=["lact", "full_attention"])
    parser.add_argument("--model", action="append", default=[], metavar="NAME=URI",
                        help="use this model for series NAME instead of the untrained demo-size one")
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "transcribe_rtf.json"))
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], float(args.worker[2]))))
        return 0
    from bench.inference_models import bench_checkpoint, bench_header, bench_split, write_results

    given = dict(m.split("=", 1) for m in args.model)
    results = bench_header("transcribe_rtf", window_s=args.window,
                           method="fresh process per point, 1 CPU, 1 torch thread; time of transcribe() "
                                  "after load and a warm-up; peak = VmHWM - VmRSS before", points=[])
    with tempfile.TemporaryDirectory(prefix="bench-rtf-") as tmp:
        os.environ.setdefault("LACT_AUDIO_HOME", os.path.join(tmp, "home"))
        split = bench_split(tmp)
        models = {name: given.get(name) or bench_checkpoint(tmp, name, split) for name in args.series}
        for seconds in args.lengths:
            wav = os.path.join(tmp, f"rec-{seconds:g}.wav")
            write_recording(wav, seconds)
            write_recording(wav.replace(".wav", "-warmup.wav"), 3.0)
            for name, uri in models.items():
                load_before = os.getloadavg()
                run = subprocess.run([sys.executable, __file__, "--worker", uri, wav, str(args.window)],
                                     capture_output=True, text=True)
                point = {"series": name, "seconds": seconds, "loadavg_before": load_before,
                         "loadavg_after": os.getloadavg()}
                if run.returncode:
                    point["error"] = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else "failed"
                else:
                    point.update(json.loads(run.stdout.strip().splitlines()[-1]))
                results["points"].append(point)
                print(json.dumps(point), file=sys.stderr)
            os.remove(wav)
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Latency (p50/p95) and requests/s of `lact-audio serve` at concurrency 1, 4 and 16, against the
same transcription called in-process.

One local Ray with Serve on loopback, one replica (--replicas) with request batching
(--max-batch-size); the model is the small demo-size LaCT model (untrained, bench/inference_models.py)
unless --model is given. Each client thread POSTs the same --seconds WAV back to back (requests
library, one session per thread) until --requests answers are in for that concurrency; a warm-up
of 4 requests runs first. In-process: transcribe_many([audio]) called --requests times in a row in
this process (one torch thread, as a replica has). Load average before and after is recorded.

    .venv/bin/python bench/serve_latency.py
    .venv/bin/python bench/serve_latency.py --requests 8 --concurrency 1 4 --out /tmp/s.json   # quick
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def summary(latencies: list[float], wall: float) -> dict:
    return {"requests": len(latencies), "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p95_ms": round(1000 * percentile(latencies, 95), 1), "requests_per_s": round(len(latencies) / wall, 2)}


def load_test(url: str, audio: bytes, concurrency: int, total: int) -> dict:
    import requests

    latencies: list[float] = []
    errors = []
    lock = threading.Lock()

    def client():
        session = requests.Session()
        while True:
            with lock:
                if len(latencies) + len(errors) >= total:
                    return
            start = time.perf_counter()
            r = session.post(f"{url}/v1/transcribe", data=audio, timeout=600)
            with lock:
                (latencies if r.status_code == 200 else errors).append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out = summary(latencies, time.perf_counter() - start)
    out.update(concurrency=concurrency, errors=len(errors))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--ray-cpus", type=int, default=4)
    parser.add_argument("--model", default=None)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "serve_latency.json"))
    args = parser.parse_args()

    import ray
    import soundfile as sf
    import torch
    from ray import serve

    from bench.inference_models import bench_checkpoint, bench_header, bench_split, synthetic_speech, write_results
    from jobs.inference.model import load
    from jobs.inference.serving import ServeConfig, start
    from jobs.inference.transcriber import transcribe_many
    from pipeline.ray_connection import connect

    results = bench_header("serve_latency", audio_s=args.seconds, replicas=args.replicas,
                           max_batch_size=args.max_batch_size)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        os.environ.setdefault("LACT_AUDIO_HOME", os.path.join(tmp, "home"))
        model_uri = args.model or bench_checkpoint(tmp, "lact", bench_split(tmp))
        sink = io.BytesIO()
        sf.write(sink, synthetic_speech(args.seconds), 16000, format="WAV", subtype="PCM_16")
        audio = sink.getvalue()

        torch.set_num_threads(1)
        model = load(model_uri)
        transcribe_many(model, [audio])
        load_before = os.getloadavg()
        latencies, begin = [], time.perf_counter()
        for _ in range(args.requests):
            t0 = time.perf_counter()
            transcribe_many(model, [audio])
            latencies.append(time.perf_counter() - t0)
        results["in_process"] = summary(latencies, time.perf_counter() - begin) | {
            "loadavg_before": load_before, "loadavg_after": os.getloadavg()}

        connect(None, num_cpus=args.ray_cpus, log_to_driver=False)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        url = start(ServeConfig(model=model_uri, replicas=args.replicas, max_batch_size=args.max_batch_size,
                                env={"LACT_AUDIO_HOME": os.environ["LACT_AUDIO_HOME"]}), port=port)
        load_test(url, audio, 1, 4)
        results["served"] = []
        for concurrency in args.concurrency:
            load_before = os.getloadavg()
            point = load_test(url, audio, concurrency, args.requests)
            point.update(loadavg_before=load_before, loadavg_after=os.getloadavg())
            results["served"].append(point)
            print(json.dumps(point), file=sys.stderr)
        import requests

        results["largest_batch"] = requests.get(f"{url}/healthz", timeout=60).json().get("largest_batch")
        serve.shutdown()
        ray.shutdown()
    write_results(results, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

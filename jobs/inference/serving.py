"""The Ray Serve deployment of an ASR model: POST /v1/transcribe, GET /healthz, following an alias.

Each replica loads the model once; requests are grouped by `serve.batch` and transcribed together
(transcriber.transcribe_many) in a worker thread, so the replica keeps answering /healthz while it
decodes. With a models:/NAME@alias URI every replica checks the alias every `poll_seconds`; when
it has moved (a nightly promotion, a rollback) the replica loads the new version beside the old
one and then swaps a single reference: requests already decoding finish on the model they
started with, later ones get the new one, none is dropped. /healthz and every answer say which
version served them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from dataclasses import dataclass, field

from ray import serve

from jobs.inference.model import load, registry_version
from jobs.inference.recognizer import WindowConfig
from jobs.inference.transcriber import DecodeOptions, transcribe_many
from jobs.tasks import ASR

log = logging.getLogger("lact_audio.serve")
APP_NAME = "lact-audio-asr"
MAX_UPLOAD_BYTES = 200 * 1024 * 1024


@dataclass
class ServeConfig:
    model: str
    data: str | None = None
    replicas: int = 1
    cpus_per_replica: float = 1.0
    gpus_per_replica: float = 0.0
    max_batch_size: int = 8
    batch_wait_s: float = 0.05
    poll_seconds: float = 30.0
    beam_size: int | None = None
    windows: WindowConfig = field(default_factory=WindowConfig)
    env: dict = field(default_factory=dict)    # MLFLOW_TRACKING_URI, LACT_AUDIO_HOME for the replicas


def upload_bytes(content_type: str, body: bytes) -> bytes:
    """The audio of a request: the body itself, or the first file part of a multipart form."""
    if not content_type.lower().startswith("multipart/"):
        return body
    from email.parser import BytesParser
    from email.policy import HTTP

    message = BytesParser(policy=HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode("latin-1") + body)
    for part in message.iter_parts():
        if part.get_filename() is not None or part.get_param("name", header="content-disposition") in ("file", "audio"):
            return part.get_payload(decode=True) or b""
    raise ValueError("the multipart form has no file part (send the audio as a field named 'file')")


class ASRService:
    """The Serve deployment class (wrapped with serve.deployment in `application`)."""

    def __init__(self, config: ServeConfig):
        os.environ.update(config.env)

        self.config = config
        self.current = load(config.model, config.data)
        self.current.require(ASR)
        self.tokenizer = self.current.text_tokenizer()
        self.batched.set_max_batch_size(config.max_batch_size)
        self.batched.set_batch_wait_timeout_s(config.batch_wait_s)
        self._stop = threading.Event()
        self.largest_batch = 0
        if config.model.startswith("models:/") and "@" in config.model:
            threading.Thread(target=self._follow_alias, daemon=True, name="alias-follower").start()

    # ---- alias following -------------------------------------------------------------------
    def _follow_alias(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            try:
                version = registry_version(self.config.model)
                if version == self.current.version:
                    continue
                fresh = load(self.config.model, self.config.data)   # pinned to the version it resolves
                tokenizer = fresh.text_tokenizer()
                self.current, self.tokenizer = fresh, tokenizer  # requests in flight keep the old one
                log.info("now serving %s version %s", self.config.model, fresh.version)
            except Exception as exc:   # the registry unreachable for a while: keep serving
                log.warning("alias check failed: %s", exc)

    # ---- requests ----------------------------------------------------------------------------
    def _transcribe(self, uploads: list[bytes]) -> list[dict]:
        model, tokenizer = self.current, self.tokenizer
        self.largest_batch = max(self.largest_batch, len(uploads))
        options = DecodeOptions(beam_size=self.config.beam_size, windows=self.config.windows)
        out = []
        for result in transcribe_many(model, uploads, options, tokenizer):
            if isinstance(result, Exception):
                out.append({"error": str(result), "status": 400})
            else:
                doc = result.to_dict()
                doc.pop("source", None)
                doc.update(model=model.uri, model_version=model.version)
                out.append(doc)
        return out

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.05)
    async def batched(self, uploads: list[bytes]) -> list[dict]:
        return await asyncio.to_thread(self._transcribe, uploads)

    def health(self) -> dict:
        m = self.current
        return {"status": "ok", "model": m.uri, "version": m.version, "task": m.task,
                "architecture": m.architecture, "largest_batch": self.largest_batch}

    async def __call__(self, request):
        from starlette.responses import JSONResponse

        path = request.url.path.rstrip("/")
        if request.method == "GET" and path.endswith("/healthz"):
            return JSONResponse(self.health())
        if not path.endswith("/v1/transcribe"):
            return JSONResponse({"error": f"no route {request.method} {path or '/'}; use POST /v1/transcribe "
                                          f"or GET /healthz"}, status_code=404)
        if request.method != "POST":
            return JSONResponse({"error": "POST the audio to /v1/transcribe"}, status_code=405)
        body = await request.body()
        if len(body) > MAX_UPLOAD_BYTES:
            return JSONResponse({"error": f"upload larger than {MAX_UPLOAD_BYTES} bytes"}, status_code=413)
        try:
            audio = upload_bytes(request.headers.get("content-type", ""), body)
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        if not audio:
            return JSONResponse({"error": "empty upload: POST the audio file's bytes"}, status_code=400)
        result = await self.batched(audio)
        return JSONResponse(result, status_code=result.pop("status", 200))


def application(config: ServeConfig):
    deployment = serve.deployment(
        ASRService, name=ASR.name, num_replicas=config.replicas,
        ray_actor_options={"num_cpus": config.cpus_per_replica, "num_gpus": config.gpus_per_replica},
        max_ongoing_requests=max(4 * config.max_batch_size, 16),
        health_check_period_s=10)
    return deployment.bind(config)


def start(config: ServeConfig, host: str = "127.0.0.1", port: int = 8000, route_prefix: str = "/") -> str:
    """Deploy on the Ray this process is connected to; returns the base URL."""
    serve.start(http_options={"host": host, "port": port})
    serve.run(application(config), name=APP_NAME, route_prefix=route_prefix)
    return f"http://{host}:{port}{route_prefix.rstrip('/')}"


BUILD_ARGS = {"model", "data", "max_batch_size", "batch_wait_s", "poll_seconds", "beam_size",
              "window_seconds", "overlap_seconds"}


def build_app(args: dict):
    """Ray Serve application builder (`import_path: jobs.inference.serving:build_app` in a RayService's
    serveConfigV2); `args` as the flags of `lact-audio serve`. Replicas and resources are set in the
    serveConfigV2 `deployments` section; MLflow and S3 settings come from the pods' environment."""
    unknown = set(args) - BUILD_ARGS
    if unknown or "model" not in args:
        raise ValueError(f"serve args: 'model' is required; unknown {sorted(unknown)} (known: {sorted(BUILD_ARGS)})")
    windows = WindowConfig(float(args.get("window_seconds", 20.0)), float(args.get("overlap_seconds", 2.0)))
    beam = int(args.get("beam_size", 1))
    return application(ServeConfig(
        model=str(args["model"]), data=args.get("data"), max_batch_size=int(args.get("max_batch_size", 8)),
        batch_wait_s=float(args.get("batch_wait_s", 0.05)), poll_seconds=float(args.get("poll_seconds", 30.0)),
        beam_size=beam if beam > 1 else None, windows=windows))

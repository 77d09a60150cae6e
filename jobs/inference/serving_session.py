"""`lact-audio serve` in the foreground: the deployment (serving.py) started on the Ray it joins
or starts, then held until Ctrl-C or SIGTERM, when the application is deleted (and a Ray started
here is shut down)."""

from __future__ import annotations

import os
import signal
import time

from jobs.inference.model import load
from jobs.tasks import ASR
from jobs.inference.serving import APP_NAME, ServeConfig, start
from jobs.runs.tracking import tracking_uri
from pipeline import uri as uris
from pipeline.ray_connection import ray_session


def replica_env() -> dict[str, str]:
    """Replicas may run on other nodes or in a Ray started earlier: they get this shell's registry
    and work directory, and its S3 settings."""
    env = {"MLFLOW_TRACKING_URI": tracking_uri(), "LACT_AUDIO_HOME": uris.work_home()}
    env.update({k: v for k, v in os.environ.items() if k.startswith(("AWS_", "MLFLOW_S3_"))})
    return env


def serve_until_stopped(config: ServeConfig, address: str | None, host: str, port: int,
                        detach: bool) -> None:
    """Deploy and print the URL; unless detach, block until Ctrl-C or SIGTERM (raised as
    KeyboardInterrupt after the application is deleted)."""
    load(config.model, config.data).require(ASR)   # a bad model is a one-line error here, not a replica crash
    with ray_session(address):
        from ray import serve

        url = start(config, host=host, port=port)
        print(f"serving {config.model} at {url}/v1/transcribe (health: {url}/healthz)", flush=True)
        if detach:
            return
        # SIGTERM (docker stop, systemd, a pod's end) stops it as Ctrl-C does. Ray's own handler,
        # set by ray.init, left the command aborted (exit 134) with Ray's agents still running.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            while True:      # until Ctrl-C or SIGTERM
                time.sleep(3600)
        finally:
            serve.delete(APP_NAME)


def _interrupt(signum, frame):
    raise KeyboardInterrupt

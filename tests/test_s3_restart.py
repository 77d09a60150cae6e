"""Preprocessing onto a real S3 API server (moto) that is restarted while shards are written: the
run rides the outage out or a re-run completes it, and whatever manifest is on S3 lists only
complete shards with the bytes it names, before, during and after."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time

import pyarrow.parquet as pq
import pytest

from pipeline.preprocess import PreprocessConfig, run_preprocess
from pipeline.uri import filesystem

pytestmark = pytest.mark.integration
SPLITS = ("train-clean-100", "dev-clean", "test-clean")


def listed_shards_are_whole(output: str) -> list[str]:
    """Problems of the manifests on S3 against the shard objects they list (empty: consistent).
    A manifest replaced while it is checked is read again: the old one's files may go then."""
    fs, root = filesystem(output)
    problems = []
    for split in SPLITS:
        for _ in range(3):
            fs.invalidate_cache()
            manifest_path = f"{root}/{split}/manifest.json"
            if not fs.exists(manifest_path):
                break
            manifest = json.loads(fs.cat_file(manifest_path))
            found = []
            for shard in manifest["shards"]:
                try:
                    data = fs.cat_file(f"{root}/{split}/{shard['path']}")
                except FileNotFoundError:
                    found.append(f"{split}/{shard['path']} listed but missing")
                    continue
                if hashlib.sha256(data).hexdigest() != shard["sha256"]:
                    found.append(f"{split}/{shard['path']} differs from its manifest entry")
                elif pq.read_table(io.BytesIO(data)).num_rows != shard["num_rows"]:
                    found.append(f"{split}/{shard['path']} row count differs")
            if not found or json.loads(fs.cat_file(manifest_path)) == manifest:
                problems += found
                break
    return problems


def restart_when_new_shards_appear(s3, bucket: str, old_names: set[str], seen: dict) -> threading.Thread:
    """Once the run has written its first new shard: stop the server for 3 s, start it again on
    the same port, and check the manifests right away (the run is still writing)."""
    import boto3

    def watch():
        client = boto3.client("s3", endpoint_url=s3.endpoint)
        deadline = time.time() + 120
        while time.time() < deadline:
            keys = {o["Key"].rsplit("/", 1)[-1] for o in
                    client.list_objects_v2(Bucket=bucket, Prefix="features/").get("Contents", [])}
            new = {k for k in keys if k.startswith("shard-") and k not in old_names}
            if new:
                seen["new_before_outage"] = len(new)
                s3.stop()
                time.sleep(3)
                s3.start()
                seen["problems_after_restart"] = listed_shards_are_whole(f"s3://{bucket}/features")
                return
            time.sleep(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_s3_server_restart_while_preprocessing_writes_shards(ray_cluster, s3_service, s3_bucket,
                                                             toy_corpus):
    output = f"{s3_bucket}/features"
    config = dict(corpus="librispeech", input_uri=str(toy_corpus.parent / "raw"), output_uri=output,
                  rows_per_shard=2, progress=False)
    first = run_preprocess(PreprocessConfig(**config))
    assert listed_shards_are_whole(output) == []
    fs, root = filesystem(output)
    old_names = {p.rsplit("/", 1)[-1] for split in SPLITS for p in fs.ls(f"{root}/{split}")}

    # One row a shard: every shard's content changes, so every one is written again.
    config["rows_per_shard"] = 1
    seen: dict = {}
    watcher = restart_when_new_shards_appear(s3_service, s3_bucket.removeprefix("s3://"), old_names, seen)
    try:
        summary = run_preprocess(PreprocessConfig(**config))
        rerun = None
    except Exception as exc:  # the outage outlasted the retries: a re-run must complete it
        summary, rerun = None, f"{type(exc).__name__}: {exc}"
    watcher.join(timeout=180)
    assert seen.get("new_before_outage"), "the server was not restarted while shards were written"
    assert seen["problems_after_restart"] == []
    assert listed_shards_are_whole(output) == []
    if rerun is not None:
        summary = run_preprocess(PreprocessConfig(**config))
        assert listed_shards_are_whole(output) == []

    assert summary["written"] == first["written"]
    for split in SPLITS:  # the manifest lists exactly the shard objects left: one row each
        fs.invalidate_cache()
        manifest = json.loads(fs.cat_file(f"{root}/{split}/manifest.json"))
        files = {p.rsplit("/", 1)[-1] for p in fs.ls(f"{root}/{split}")} - {"manifest.json"}
        assert files == {s["path"] for s in manifest["shards"]}
        assert all(s["num_rows"] == 1 for s in manifest["shards"])

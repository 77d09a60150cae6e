"""cluster/: every manifest parses, names the pinned versions, keeps token auth on and secrets out,
and runs only real `lact-audio` commands (checked with the CLI's own parser)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
import yaml

from jobs.cli import COMMANDS, build_parser
from jobs.submit import JOB_KINDS

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
IMAGE_ROOT = "/home/ray/lact-audio/"   # WORKDIR of cluster/Dockerfile: the repository inside the image
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|KEY_ID|BACKEND_STORE_URI)", re.I)


def pins() -> dict[str, str]:
    """package name -> pinned version, from pyproject.toml."""
    found = {}
    for dep in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        name, _, version = dep.partition("==")
        found[re.sub(r"\[.*\]", "", name)] = version
    return found


PINS = pins()
RAY, MLFLOW = PINS["ray"], PINS["mlflow"]


def documents() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted(CLUSTER.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((str(path.relative_to(CLUSTER)), doc))
    return docs


DOCS = documents()


def kinds(kind: str) -> list[dict]:
    return [doc for _, doc in DOCS if doc.get("kind") == kind]


def walk(node, key: str):
    """Every value stored under `key` anywhere in a parsed YAML tree."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                yield v
            yield from walk(v, key)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item, key)


def rayjob_specs() -> list[tuple[str, dict]]:
    """Each RayJob spec: the templates, the RayCronJob's jobTemplate, and the one inside the CronJob's
    ConfigMap (generated from rayjob-nightly.yaml by kustomization.yaml)."""
    specs = [(f"RayJob {doc['metadata']['generateName']}", doc["spec"]) for doc in kinds("RayJob")]
    specs += [(f"RayCronJob {doc['metadata']['name']}", doc["spec"]["jobTemplate"]) for doc in kinds("RayCronJob")]
    return specs


def test_every_manifest_parses_and_is_complete():
    assert len(DOCS) >= 12
    for path, doc in DOCS:
        if path.startswith("launcher/"):
            assert doc["cluster_name"] and doc["available_node_types"], path
            continue
        assert doc.get("apiVersion") and doc.get("kind"), path
        if doc["kind"] != "Kustomization":
            assert doc["metadata"].get("name") or doc["metadata"].get("generateName"), path
        if doc["apiVersion"].startswith("ray.io"):
            assert doc["apiVersion"] == "ray.io/v1", path


def test_kustomization_lists_files_that_exist():
    (kustomization,) = kinds("Kustomization")
    for name in kustomization["resources"] + [f for g in kustomization["configMapGenerator"] for f in g["files"]]:
        assert (KUBERAY / name).is_file(), name
    # The CronJob mounts the generated ConfigMap and creates the RayJob from its file.
    (cronjob,) = kinds("CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == kustomization["configMapGenerator"][0]["name"]
    assert pod["containers"][0]["command"][-1].endswith("/" + kustomization["configMapGenerator"][0]["files"][0])


def test_raycluster_cpu_head_autoscaling_gpu_workers_token_auth():
    (cluster,) = kinds("RayCluster")
    spec = cluster["spec"]
    assert spec["rayVersion"] == RAY
    assert spec["authOptions"]["mode"] == "token"
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in str(head["resources"])
    (gpu,) = spec["workerGroupSpecs"]
    assert gpu["minReplicas"] < gpu["maxReplicas"]
    assert gpu["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    # Settings and credentials come from the ConfigMap and the Secret.
    for container in [head, gpu["template"]["spec"]["containers"][0]]:
        refs = {next(iter(ref)): ref[next(iter(ref))]["name"] for ref in container["envFrom"]}
        assert refs == {"configMapRef": "lact-audio-settings", "secretRef": "lact-audio-s3"}
    (settings,) = [d for d in kinds("ConfigMap") if d["metadata"]["name"] == "lact-audio-settings"]
    assert settings["data"]["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")


def test_images_match_the_pins():
    images = [image for _, doc in DOCS for image in walk(doc, "image")]
    ray_images = [i for i in images if "lact-audio/lact-audio" in i]
    assert ray_images and all(i.endswith(f":0.1.0-ray{RAY}-py311-gpu") for i in ray_images), ray_images
    assert "ghcr.io/lact-audio/mlflow:" + MLFLOW in images
    assert f"FROM rayproject/ray:{RAY}-py311-gpu" in (CLUSTER / "Dockerfile").read_text()
    assert f"FROM ghcr.io/mlflow/mlflow:v{MLFLOW}" in (CLUSTER / "mlflow.Dockerfile").read_text()
    assert f"boto3=={PINS['boto3']}" in (CLUSTER / "mlflow.Dockerfile").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == "0.1.0" and project["requires-python"].startswith(">=3.11,<3.12")


def test_no_inline_secrets():
    assert not kinds("Secret"), "Secrets are created with kubectl from the user's values, never committed"
    for path, doc in DOCS:
        for env in walk(doc, "env"):
            for var in env if isinstance(env, list) else []:
                if SECRET_NAME.search(var["name"]):
                    assert "secretKeyRef" in var.get("valueFrom", {}), (path, var["name"])
        for data in walk(doc, "data"):
            if doc.get("kind") == "ConfigMap":
                assert not any(SECRET_NAME.search(k) for k in data), (path, list(data))
        text = yaml.safe_dump(doc)
        assert not re.search(r"(AKIA[0-9A-Z]{12,}|aws_secret_access_key\s*[:=])", text, re.I), path
    launcher = (CLUSTER / "launcher" / "aws.yaml").read_text()
    assert "RAY_AUTH_MODE=token" in launcher and "AWS_SECRET_ACCESS_KEY" not in launcher


def entry_arguments(entrypoint: str) -> list[str]:
    words = shlex.split(entrypoint)
    assert words[0] == "lact-audio", entrypoint
    return words[1:]


def test_entrypoints_are_real_lact_audio_commands():
    specs = rayjob_specs()
    assert {spec["entrypoint"].split()[1] for _, spec in specs} == {"preprocess", "train", "tune", "nightly"}
    for where, spec in specs:
        assert spec["clusterSelector"] == {"ray.io/cluster": "lact-audio"}, where
        args = entry_arguments(spec["entrypoint"])
        assert args[0] in JOB_KINDS, where
        if args[0] not in COMMANDS:  # `nightly` is parsed once its command exists (branch nightly)
            continue
        parsed = build_parser().parse_args(args)
        config = getattr(parsed, "config", None)
        if config:  # a path inside the image: the same file in this repository
            assert config.startswith(IMAGE_ROOT) and (REPO / config[len(IMAGE_ROOT):]).is_file(), (where, config)


def test_both_nightly_schedules_run_the_nightly_rayjob():
    (rayjob,) = [doc for doc in kinds("RayJob") if doc["metadata"]["generateName"] == "lact-audio-nightly-"]
    (raycron,) = kinds("RayCronJob")
    (cron,) = kinds("CronJob")
    assert raycron["spec"]["jobTemplate"] == rayjob["spec"]
    assert raycron["spec"]["schedule"] == cron["spec"]["schedule"]
    assert raycron["spec"]["concurrencyPolicy"] == cron["spec"]["concurrencyPolicy"] == "Forbid"
    (role,) = kinds("Role")
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create", "get", "list"]}]


def test_mlflow_server_postgres_backend_s3_artifacts():
    (deployment,) = [d for d in kinds("Deployment") if d["metadata"]["name"] == "mlflow"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(container["args"])
    assert "--backend-store-uri=$(MLFLOW_BACKEND_STORE_URI)" in args
    assert "--artifacts-destination=$(MLFLOW_ARTIFACTS_DESTINATION)" in args
    (settings,) = [d for d in kinds("ConfigMap") if d["metadata"]["name"] == "lact-audio-settings"]
    assert settings["data"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    (postgres,) = kinds("StatefulSet")
    assert postgres["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:")


@pytest.mark.parametrize("line", ["lact-audio frobnicate", "lact-audio train --no-such-flag x"])
def test_the_entrypoint_check_can_fail(line):
    with pytest.raises(SystemExit):
        build_parser().parse_args(entry_arguments(line))

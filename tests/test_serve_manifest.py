"""cluster/kuberay/rayservice.yaml: valid against KubeRay v1.7.0's RayService CRD (jsonschema, unknown
fields refused) and the operator's cluster rules, and its serveConfigV2 names an application
builder and deployment that exist, with arguments the builder accepts."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from test_cluster_manifests import CRDS, PINS, kuberay_problems

MANIFEST = Path(__file__).resolve().parents[1] / "cluster" / "kuberay" / "rayservice.yaml"


@pytest.fixture(scope="module")
def service() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


@pytest.mark.skipif(not CRDS.is_dir(), reason=f"KubeRay CRDs not present at {CRDS}")
def test_rayservice_passes_the_kuberay_schema(service):
    import jsonschema

    crd = yaml.safe_load((CRDS / "ray.io_rayservices.yaml").read_text())
    (v1,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    jsonschema.Draft7Validator(v1["schema"]["openAPIV3Schema"]).validate(service)
    assert kuberay_problems(service) == []
    broken = yaml.safe_load(MANIFEST.read_text())
    broken["spec"]["rayClusterConfig"]["rayVersion"] = "2.40.0"       # token auth needs >= 2.52
    assert kuberay_problems(broken)


def test_serve_config_builds_the_lact_audio_application(service):
    import importlib

    from jobs.inference import serving

    assert service["spec"]["rayClusterConfig"]["rayVersion"] == PINS["ray"]
    config = yaml.safe_load(service["spec"]["serveConfigV2"])
    (app,) = config["applications"]
    module, _, name = app["import_path"].partition(":")
    assert getattr(importlib.import_module(module), name) is serving.build_app
    assert set(app["args"]) <= serving.BUILD_ARGS and app["args"]["model"].endswith("@champion")
    built = serving.build_app(app["args"])           # a Serve Application; nothing is started
    assert [d["name"] for d in app["deployments"]] == ["asr"]
    assert built is not None
    with pytest.raises(ValueError, match="unknown"):
        serving.build_app({"model": "models:/x@champion", "replicas": 3})

"""cluster/: every manifest parses, names the pinned versions, keeps token auth on and secrets out,
and runs only real `lact-audio` commands (checked with the CLI's own parser).

Every `ray.io` object (RayCronJob templates also as RayJobs) is validated against KubeRay v1.7.0's
own CRDs in ../shared/schemas (unknown fields refused, as the API server's strict field validation
does) and against the operator's reconcile-time rules that no schema carries; standard Kubernetes
objects against kubernetes-validate's schemas. Those tests skip when ../shared is absent."""

from __future__ import annotations

import copy
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from jobs.cli import COMMANDS, build_parser
from jobs.commands.submit import JOB_KINDS

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
KUBERAY = CLUSTER / "kuberay"
CRDS = REPO.parent / "shared" / "schemas" / "kuberay-v1.7.0"
CRD_FILES = {"RayCluster": "ray.io_rayclusters.yaml", "RayJob": "ray.io_rayjobs.yaml",
             "RayService": "ray.io_rayservices.yaml", "RayCronJob": "ray.io_raycronjobs.yaml"}
# The Kubernetes versions the standard objects are checked against: the oldest that has every field
# used (CronJob.spec.timeZone is GA from 1.27; KubeRay 1.7 itself needs a recent cluster) and the newest known.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
IMAGE_ROOT = "/home/ray/lact-audio/"   # WORKDIR of cluster/Dockerfile: the repository inside the image
SECRET_NAME = re.compile(r"(SECRET|PASSWORD|TOKEN|ACCESS_KEY|KEY_ID)", re.I)


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


# ---- KubeRay's schemas and the operator's rules -------------------------------------------------------

needs_shared = pytest.mark.skipif(not CRDS.is_dir(), reason=f"KubeRay CRDs not present at {CRDS}")


def strict(schema):
    """A CRD schema that refuses unknown fields: `additionalProperties: false` wherever it lists
    properties, says nothing about extra ones and does not preserve unknown fields."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strict(value) for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


@cache
def crd_validator(kind: str):
    """jsonschema validator of `kind`'s served ray.io/v1 schema (KubeRay v1.7.0)."""
    import jsonschema

    crd = yaml.safe_load((CRDS / CRD_FILES[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    assert version["served"], f"{kind} v1 is not served by KubeRay v1.7.0"
    schema = strict(version["schema"]["openAPIV3Schema"])
    # ObjectMeta is `type: object` in a CRD; these are the fields the manifests may use.
    schema["properties"]["metadata"] = {"type": "object", "additionalProperties": False, "properties": {
        key: {"type": "string"} for key in ("name", "generateName", "namespace")} | {
        key: {"type": "object", "additionalProperties": {"type": "string"}} for key in ("labels", "annotations")}}
    return jsonschema.Draft7Validator(schema)


def schema_errors(doc: dict) -> list[str]:
    """`kind` validated as KubeRay v1.7.0's CRD would (unknown fields refused)."""
    if doc.get("kind") not in CRD_FILES:
        return [f"no KubeRay CRD has kind {doc.get('kind')!r}"]
    errors = sorted(crd_validator(doc["kind"]).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def cluster_rule_errors(spec: dict) -> list[str]:
    """Reconcile-time rules of a RayCluster spec (ray-operator/controllers/ray/utils/validation.go)."""
    errors = []
    if (spec.get("authOptions") or {}).get("mode") == "token" and \
            version_tuple(spec.get("rayVersion", "0")) < (2, 52, 0):
        errors.append(f"authOptions.mode token needs rayVersion >= 2.52.0, got {spec.get('rayVersion')!r}")
    if not spec["headGroupSpec"]["template"]["spec"].get("containers"):
        errors.append("headGroupSpec has no containers")
    names = [g["groupName"] for g in spec.get("workerGroupSpecs", [])]
    if len(names) != len(set(names)):
        errors.append(f"worker group names repeat: {names}")
    for group in spec.get("workerGroupSpecs", []):
        low, high = group.get("minReplicas", 0), group.get("maxReplicas", 2**31 - 1)
        if low > high:
            errors.append(f"worker group {group['groupName']}: minReplicas {low} > maxReplicas {high}")
        if not low <= group.get("replicas", low) <= high:
            errors.append(f"worker group {group['groupName']}: replicas outside [minReplicas, maxReplicas]")
    ft = spec.get("gcsFaultToleranceOptions")
    if ft is not None and ft.get("backend", "redis") == "redis" and not ft.get("redisAddress"):
        errors.append("gcsFaultToleranceOptions with the redis backend needs redisAddress")
    return errors


def rayjob_rule_errors(spec: dict) -> list[str]:
    """Reconcile-time rules of a RayJob spec (validation.go): a manifest that breaks one is accepted by
    `kubectl apply` and then sits in ValidationFailed, never submitted."""
    errors = []
    selector, shutdown = bool(spec.get("clusterSelector")), bool(spec.get("shutdownAfterJobFinishes"))
    if spec.get("ttlSecondsAfterFinished", 0) and not shutdown:
        errors.append("ttlSecondsAfterFinished needs shutdownAfterJobFinishes: true")
    if spec.get("ttlSecondsAfterFinished", 0) < 0:
        errors.append("ttlSecondsAfterFinished must not be negative")
    if shutdown and selector:
        errors.append("shutdownAfterJobFinishes: true with a clusterSelector (the cluster is not the job's)")
    if spec.get("backoffLimit", 0) > 0 and selector:
        errors.append("backoffLimit is incompatible with clusterSelector")
    if not selector and spec.get("rayClusterSpec") is None:
        errors.append("one of rayClusterSpec or clusterSelector must be set")
    if spec.get("suspend") and not shutdown:
        errors.append("suspend needs shutdownAfterJobFinishes: true")
    if spec.get("submissionMode") == "SidecarMode" and selector:
        errors.append("SidecarMode cannot use clusterSelector")
    if spec.get("deletionStrategy") and shutdown:
        errors.append("deletionStrategy and shutdownAfterJobFinishes cannot both be set")
    if spec.get("submissionMode", "K8sJobMode") != "InteractiveMode" and not spec.get("entrypoint", "").strip():
        errors.append("entrypoint is empty")
    if spec.get("runtimeEnvYAML") is not None:
        try:
            assert isinstance(yaml.safe_load(spec["runtimeEnvYAML"]), dict)
        except (yaml.YAMLError, AssertionError):
            errors.append("runtimeEnvYAML is not a YAML mapping")
    if spec.get("rayClusterSpec") is not None:
        errors += [f"rayClusterSpec: {e}" for e in cluster_rule_errors(spec["rayClusterSpec"])]
    return errors


def rule_errors(doc: dict) -> list[str]:
    spec = doc.get("spec") or {}
    if doc["kind"] == "RayCluster":
        return cluster_rule_errors(spec)
    if doc["kind"] == "RayJob":
        return rayjob_rule_errors(spec)
    if doc["kind"] == "RayCronJob":
        return [f"jobTemplate: {e}" for e in rayjob_rule_errors(spec.get("jobTemplate") or {})]
    if doc["kind"] == "RayService":
        return [f"rayClusterConfig: {e}" for e in cluster_rule_errors(spec.get("rayClusterConfig") or {})]
    return []


def kuberay_problems(doc: dict) -> list[str]:
    """Everything KubeRay v1.7.0 (API server + operator) would refuse in one ray.io object; a
    RayCronJob's jobTemplate is also checked as a whole RayJob (it becomes one every night)."""
    problems = schema_errors(doc) + rule_errors(doc)
    if doc.get("kind") == "RayCronJob" and isinstance(doc.get("spec", {}).get("jobTemplate"), dict):
        as_job = {"apiVersion": "ray.io/v1", "kind": "RayJob", "metadata": {"name": "from-template"},
                  "spec": doc["spec"]["jobTemplate"]}
        problems += [f"jobTemplate as a RayJob: {p}" for p in schema_errors(as_job)]
    return problems


def ray_objects() -> list[tuple[str, dict]]:
    return [(f"{path}: {doc['kind']} {doc['metadata'].get('name') or doc['metadata'].get('generateName')}", doc)
            for path, doc in DOCS if str(doc.get("apiVersion", "")).startswith("ray.io/")]


def standard_objects() -> list[tuple[str, dict]]:
    return [(f"{path}: {doc['kind']} {doc['metadata']['name']}", doc) for path, doc in DOCS
            if not path.startswith("launcher/") and doc.get("kind") != "Kustomization"
            and not str(doc.get("apiVersion", "")).startswith("ray.io/")]


@needs_shared
@pytest.mark.parametrize("where, doc", ray_objects(), ids=[w for w, _ in ray_objects()])
def test_ray_objects_pass_kuberay_schemas_and_operator_rules(where, doc):
    problems = kuberay_problems(doc)
    assert not problems, f"{where}:\n  " + "\n  ".join(problems)


@needs_shared
def test_the_cronjob_creates_a_valid_rayjob():
    """The RayJob the Kubernetes CronJob creates, from the ConfigMap made of rayjob-nightly.yaml."""
    (rayjob,) = [d for d in DOCS if d[0] == "kuberay/rayjob-nightly.yaml"]
    assert not kuberay_problems(rayjob[1])


@pytest.mark.parametrize("where, doc", standard_objects(), ids=[w for w, _ in standard_objects()])
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_standard_objects_pass_kubernetes_schemas(where, doc, version):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where} (Kubernetes {version}): {'.'.join(map(str, exc.path))}: {exc.message}")


BROKEN = {  # each a change the checks must refuse, on a valid RayJob / RayCluster
    "unknown field": ("RayCronJob", lambda s: s.update(concurrencyPolicy="Forbid"), "concurrencyPolicy"),
    "TTL without shutdown": ("RayJob", lambda s: s.update(shutdownAfterJobFinishes=False), "ttlSecondsAfterFinished"),
    "backoffLimit with a selector": ("RayJob", lambda s: (s.pop("rayClusterSpec"), s.pop("ttlSecondsAfterFinished"),
                                                         s.update(shutdownAfterJobFinishes=False,
                                                                  clusterSelector={"ray.io/cluster": "x"})),
                                     "backoffLimit"),
    "token auth on an old Ray": ("RayCluster", lambda s: s.update(rayVersion="2.50.0"), "2.52.0"),
    "unknown pod field": ("RayCluster", lambda s: s["headGroupSpec"]["template"]["spec"].update(restartPolicyy="x"),
                          "restartPolicyy"),
    "a typo in a field": ("RayJob", lambda s: s.update(ttlSecondsAfterFinish=1), "ttlSecondsAfterFinish"),
}


@needs_shared
@pytest.mark.parametrize("case", list(BROKEN))
def test_the_kuberay_checks_can_fail(case):
    kind, change, word = BROKEN[case]
    source = {"RayCluster": "kuberay/raycluster.yaml", "RayJob": "kuberay/rayjob-nightly.yaml",
              "RayCronJob": "kuberay/raycronjob-nightly.yaml"}[kind]
    (doc,) = [copy.deepcopy(d) for path, d in DOCS if path == source and d["kind"] == kind]
    assert not kuberay_problems(doc)
    change(doc["spec"])
    problems = kuberay_problems(doc)
    assert problems and word in " ".join(problems), problems


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


def pod_containers(cluster_spec: dict) -> list[dict]:
    """The Ray containers of a RayCluster spec: head first, then one per worker group."""
    groups = [cluster_spec["headGroupSpec"]] + cluster_spec.get("workerGroupSpecs", [])
    return [group["template"]["spec"]["containers"][0] for group in groups]


def quantity(text) -> float:
    """A Kubernetes CPU quantity ("8", "500m") as cores."""
    text = str(text)
    return float(text[:-1]) / 1000 if text.endswith("m") else float(text)


def cluster_specs() -> list[tuple[str, dict]]:
    specs = [("RayCluster lact-audio", doc["spec"]) for doc in kinds("RayCluster")]
    return specs + [(where, spec["rayClusterSpec"]) for where, spec in rayjob_specs() if "rayClusterSpec" in spec]


@pytest.mark.parametrize("where, spec", cluster_specs(), ids=[w for w, _ in cluster_specs()])
def test_ray_clusters_cpu_head_data_workers_gpu_workers_token_auth(where, spec):
    assert spec["rayVersion"] == RAY
    assert spec["authOptions"]["mode"] == "token"
    assert spec["enableInTreeAutoscaling"] is True
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in str(head["resources"])
    groups = {g["groupName"]: g for g in spec["workerGroupSpecs"]}
    assert set(groups) == {"cpu", "gpu"}, where          # Ray Data gets CPUs that Train workers do not hold
    assert "nvidia.com/gpu" not in str(groups["cpu"]["template"]["spec"]["containers"][0]["resources"])
    for group in groups.values():
        assert group["minReplicas"] < group["maxReplicas"], where
    assert groups["gpu"]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]
    for group in [spec["headGroupSpec"], *groups.values()]:
        pod = group["template"]["spec"]
        # The object store and NCCL use /dev/shm; a container's default one is 64 MiB.
        (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/shm"]
        (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
        assert volume["emptyDir"]["medium"] == "Memory", where
    # Settings and credentials come from the ConfigMap and the Secrets, the same on every pod.
    for container in pod_containers(spec):
        refs = [(next(iter(ref)), ref[next(iter(ref))]["name"]) for ref in container["envFrom"]]
        assert refs == [("configMapRef", "lact-audio-settings"), ("secretRef", "lact-audio-s3"),
                        ("secretRef", "lact-audio-mlflow-client")], where
    (settings,) = [d for d in kinds("ConfigMap") if d["metadata"]["name"] == "lact-audio-settings"]
    assert settings["data"]["MLFLOW_TRACKING_URI"].startswith("http://mlflow.")


def test_the_long_running_cluster_survives_a_head_restart():
    (cluster,) = kinds("RayCluster")
    ft = cluster["spec"]["gcsFaultToleranceOptions"]
    (redis,) = [d for d in kinds("Service") if d["metadata"]["name"] == ft["redisAddress"].split(":")[0]]
    assert redis["spec"]["ports"][0]["port"] == int(ft["redisAddress"].split(":")[1])
    assert ft["redisPassword"]["valueFrom"]["secretKeyRef"]["name"] == "lact-audio-redis"


def train_fits(where: str, config_path: Path, cluster_spec: dict) -> None:
    """Every Train worker of a training config fits one pod of the GPU group, and the group has room
    for all of them: an unschedulable size would leave the job pending forever."""
    # Read from the YAML (a nightly config's `config:` over its base config): importing the training
    # config code costs seconds of torch import for four numbers.
    raw = yaml.safe_load(config_path.read_text())
    train = dict(raw.get("train", {}))
    if "base_config" in raw:
        train = {**yaml.safe_load((config_path.parent / raw["base_config"]).read_text())["train"],
                 **raw.get("config", {}).get("train", {})}
    cfg = SimpleNamespace(train=SimpleNamespace(**{k: train.get(k) for k in ("use_gpu", "cpus_per_worker",
                                                                               "num_workers")}))
    (gpu,) = [g for g in cluster_spec["workerGroupSpecs"] if g["groupName"] == "gpu"]
    limits = gpu["template"]["spec"]["containers"][0]["resources"]["limits"]
    assert cfg.train.use_gpu and int(limits["nvidia.com/gpu"]) == 1, where
    assert cfg.train.cpus_per_worker <= quantity(limits["cpu"]), where
    assert cfg.train.num_workers <= gpu["maxReplicas"], (where, cfg.train.num_workers, gpu["maxReplicas"])


def test_training_sizes_fit_their_clusters():
    (cluster,) = kinds("RayCluster")
    for where, spec in rayjob_specs():
        args = entry_arguments(spec["entrypoint"])
        config = REPO / args[args.index("--config") + 1][len(IMAGE_ROOT):] if "--config" in args else None
        if args[0] == "train":
            train_fits(where, config, cluster["spec"])
        if args[0] == "nightly":
            train_fits(where, config, spec["rayClusterSpec"])


def test_images_match_the_pins():
    images = [image for _, doc in DOCS for image in walk(doc, "image")]
    ray_images = [i for i in images if "lact-audio/lact-audio" in i]
    assert ray_images and all(i.endswith(f":0.1.0-ray{RAY}-py311-gpu") for i in ray_images), ray_images
    assert "ghcr.io/lact-audio/mlflow:" + MLFLOW in images
    # bitnami/kubectl's versioned tags are no longer published (STACK_NOTES); every image has a version.
    assert not [i for i in images if i.startswith("bitnami/")], images
    assert all(":" in i and not i.endswith(":latest") for i in images), images
    assert f"FROM rayproject/ray:{RAY}-py311-gpu" in (CLUSTER / "Dockerfile").read_text()
    assert f"FROM ghcr.io/mlflow/mlflow:v{MLFLOW}" in (CLUSTER / "mlflow.Dockerfile").read_text()
    assert f"boto3=={PINS['boto3']}" in (CLUSTER / "mlflow.Dockerfile").read_text()
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["version"] == "0.1.0" and project["requires-python"].startswith(">=3.11,<3.12")


def containers(doc: dict) -> list[dict]:
    return [c for group in walk(doc, "containers") for c in group]


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
        # No password inside a URI (scheme://user:password@host), in any value or config file.
        assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), path
    launcher = (CLUSTER / "launcher" / "aws.yaml").read_text()
    assert "RAY_AUTH_MODE=token" in launcher and "AWS_SECRET_ACCESS_KEY" not in launcher


def test_no_secret_reaches_a_command_line():
    """Kubernetes expands $(VAR) in command/args into the process's argv, which `ps` and /proc show to
    anyone on the node: no container names a Secret-backed variable there."""
    for path, doc in DOCS:
        for container in containers(doc):
            secret_vars = {v["name"] for v in container.get("env", []) if "secretKeyRef" in v.get("valueFrom", {})}
            argv = " ".join(container.get("command", []) + container.get("args", []))
            for name in secret_vars:
                assert f"$({name})" not in argv, (path, container["name"], name)
            # $VAR in a shell command is expanded by the shell, inside the process: allowed.
            assert not re.search(r"\$\((\w*(PASSWORD|SECRET|TOKEN|BACKEND_STORE_URI)\w*)\)", argv), (path, argv)


def entry_arguments(entrypoint: str) -> list[str]:
    words = shlex.split(entrypoint)
    assert words[0] == "lact-audio", entrypoint
    return words[1:]


def test_entrypoints_are_real_lact_audio_commands():
    specs = rayjob_specs()
    assert {spec["entrypoint"].split()[1] for _, spec in specs} == {"preprocess", "train", "tune", "nightly"}
    for where, spec in specs:
        nightly = spec["entrypoint"].split()[1] == "nightly"
        if nightly:   # a cluster of its own per night, deleted when the job ends
            assert "clusterSelector" not in spec and spec["shutdownAfterJobFinishes"] is True, where
        else:         # the team's long-running RayCluster
            assert spec["clusterSelector"] == {"ray.io/cluster": "lact-audio"}, where
        args = entry_arguments(spec["entrypoint"])
        assert args[0] in JOB_KINDS, where
        assert args[0] in COMMANDS, where
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
    assert raycron["spec"]["timeZone"] == cron["spec"]["timeZone"] == "UTC"
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (role,) = kinds("Role")
    assert role["rules"] == [{"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create", "get", "list"]}]


def test_mlflow_server_postgres_backend_s3_artifacts_basic_auth():
    (deployment,) = [d for d in kinds("Deployment") if d["metadata"]["name"] == "mlflow"]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--app-name=basic-auth" in container["args"]
    env = {v["name"]: v for v in container["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["value"].startswith("postgresql://mlflow@")
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "lact-audio-mlflow-db",
                                                              "key": "POSTGRES_PASSWORD"}
    assert "secretRef" in str(container["envFrom"]) and "lact-audio-mlflow-auth" in str(container["envFrom"])
    (config,) = [d for d in kinds("ConfigMap") if d["metadata"]["name"] == "lact-audio-mlflow-config"]
    ini = config["data"]["basic_auth.ini"]
    assert "default_permission = READ" in ini and "admin_password" not in ini
    assert env["MLFLOW_AUTH_CONFIG_PATH"]["value"].endswith("/basic_auth.ini")
    (settings,) = [d for d in kinds("ConfigMap") if d["metadata"]["name"] == "lact-audio-settings"]
    assert settings["data"]["MLFLOW_ARTIFACTS_DESTINATION"].startswith("s3://")
    (postgres,) = [d for d in kinds("StatefulSet") if d["metadata"]["name"] == "mlflow-postgres"]
    assert postgres["spec"]["template"]["spec"]["containers"][0]["image"].startswith("postgres:")


@pytest.mark.parametrize("line", ["lact-audio frobnicate", "lact-audio train --no-such-flag x"])
def test_the_entrypoint_check_can_fail(line):
    with pytest.raises(SystemExit):
        build_parser().parse_args(entry_arguments(line))


def test_the_kubernetes_check_can_fail():
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    (cron,) = copy.deepcopy(kinds("CronJob"))
    cron["spec"]["concurrencyPolicyy"] = "Forbid"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(cron, KUBERNETES_VERSIONS[0], strict=True)

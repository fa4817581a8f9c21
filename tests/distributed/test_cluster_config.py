"""ray_cluster.yaml and cluster/*.yaml: Ray's own validation, the fields we rely on, and that every command
they run parses with the real CLI (ray's click commands, exactcompress's typer app)."""

from __future__ import annotations

import copy
import re
import shlex
from pathlib import Path

import click
import jsonschema
import pytest
import ray
import tomllib
import typer.main
import yaml
from packaging.requirements import Requirement
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.scripts.scripts import cli as ray_cli

from exactcompress.cli import app as exactcompress_app
from exactcompress.schema import ZooJobSpec

ROOT = Path(__file__).resolve().parents[2]
CLUSTER_CONFIG = ROOT / "ray_cluster.yaml"
KUBERAY_JOB = ROOT / "cluster" / "kuberay-rayjob.yaml"
KUBERAY_NIGHTLY = ROOT / "cluster" / "kuberay-nightly.yaml"
NIGHTLY_SPEC = ROOT / "cluster" / "nightly.yaml"
CRONTAB = ROOT / "cluster" / "crontab.example"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _program_invocations(command: str) -> list[list[str]]:
    """The argv of each ``;``/``&&``-separated part of a shell line, without leading ``NAME=value`` words."""
    invocations = []
    for part in command.replace("&&", ";").split(";"):
        words = shlex.split(part)
        while words and "=" in words[0] and not words[0].startswith("-"):
            words = words[1:]
        if words:
            invocations.append(words)
    return invocations


def _parse_cli(argv: list[str]) -> None:
    """Parse ``argv`` with the real CLI it names (ray, exactcompress); raises click's error if it is wrong."""
    programs = {"ray": ray_cli}
    programs.update({name: typer.main.get_command(exactcompress_app)
                     for name, target in PYPROJECT["project"]["scripts"].items() if target == "exactcompress.cli:main"})
    assert argv[0] in programs, f"unknown program {argv[0]!r}"
    command, args = programs[argv[0]], argv[1:]
    while hasattr(command, "commands"):  # descend through groups to the subcommand
        command, args = command.commands[args[0]], args[1:]
    command.make_context(argv[0], args)


def _ray_commands(commands: list[str]) -> list[list[str]]:
    return [argv for line in commands for argv in _program_invocations(line) if argv[0] == "ray"]


@pytest.fixture(scope="module")
def cluster_config() -> dict:
    return yaml.safe_load(CLUSTER_CONFIG.read_text())


def test_cluster_config_passes_rays_validation(cluster_config):
    prepared = prepare_config(copy.deepcopy(cluster_config))
    validate_config(prepared)
    # the validation is strict: a misspelt field is refused
    typo = copy.deepcopy(cluster_config)
    typo["available_node_types"]["ray.worker.cpu"]["min_worker"] = 1
    with pytest.raises(jsonschema.ValidationError, match="min_worker"):
        validate_config(prepare_config(typo))


def test_cluster_config_has_an_aws_head_and_autoscaling_cpu_workers(cluster_config):
    assert cluster_config["provider"]["type"] == "aws" and cluster_config["provider"]["region"]
    node_types = cluster_config["available_node_types"]
    assert cluster_config["head_node_type"] in node_types
    workers = [node for name, node in node_types.items() if name != cluster_config["head_node_type"]]
    assert workers and all(node["min_workers"] == 0 and node["max_workers"] >= 1 for node in workers)
    assert cluster_config["max_workers"] >= max(node["max_workers"] for node in workers)
    assert all(node["node_config"]["InstanceType"] for node in node_types.values())
    assert ray.__version__ in cluster_config["docker"]["image"]  # the cluster runs the client's Ray


def test_cluster_setup_installs_cpu_torch_then_this_checkout(cluster_config):
    setup = cluster_config["setup_commands"]
    [torch_at] = [i for i, line in enumerate(setup) if "torch==" in line]
    [package_at] = [i for i, line in enumerate(setup) if "~/exactcompress" in line]
    assert torch_at < package_at and TORCH_CPU_INDEX in setup[torch_at]
    pinned = next(word for word in shlex.split(setup[torch_at]) if word.startswith("torch=="))
    torch_requirement = next(Requirement(d) for d in PYPROJECT["project"]["dependencies"] if d.startswith("torch"))
    assert torch_requirement.specifier.contains(pinned.split("==")[1])
    assert shlex.split(setup[package_at])[:2] == ["pip", "install"]
    # the installed path is a mount of this checkout (ray up runs from the repository root)
    assert cluster_config["file_mounts"]["~/exactcompress"] == "."
    assert PYPROJECT["project"]["name"] == "exactcompress"


def test_cluster_nodes_start_ray_with_token_auth_and_the_jobs_api(cluster_config):
    head = _ray_commands(cluster_config["head_start_ray_commands"])
    workers = _ray_commands(cluster_config["worker_start_ray_commands"])
    for argv in head + workers:
        _parse_cli(argv)  # every flag exists in this Ray's `ray start`
    [head_start] = [argv for argv in head if argv[1] == "start"]
    assert "--head" in head_start and "--dashboard-host=0.0.0.0" in head_start
    assert any(argv[1] == "start" and any(a.startswith("--address=") for a in argv) for argv in workers)
    for line in cluster_config["head_start_ray_commands"] + cluster_config["worker_start_ray_commands"]:
        assert "ray start" not in line or "RAY_AUTH_MODE=token" in line
    assert cluster_config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_cli_check_refuses_unknown_flags_and_commands():
    with pytest.raises(click.exceptions.NoSuchOption, match="--no-such-flag"):
        _parse_cli(["ray", "start", "--head", "--no-such-flag"])
    with pytest.raises(KeyError):
        _parse_cli(["exactcompress", "zoo", "no-such-command"])


@pytest.fixture(scope="module")
def kuberay_documents() -> dict[str, dict]:
    documents = [doc for doc in yaml.safe_load_all(KUBERAY_JOB.read_text()) if doc]
    return {doc["kind"]: doc for doc in documents}


def _containers(rayjob: dict) -> list[dict]:
    cluster = rayjob["spec"]["rayClusterSpec"]
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    return [container for group in groups for container in group["template"]["spec"]["containers"]]


def _mounted_config_map(pod: dict, container: dict, path: Path) -> str:
    """The name of the ConfigMap that ``container`` of ``pod`` sees at ``path``'s folder."""
    [mount] = [m for m in container["volumeMounts"] if Path(m["mountPath"]) == path.parent]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    return volume["configMap"]["name"]


def test_cluster_manifests_parse_and_name_their_kind():
    manifests = sorted((ROOT / "cluster").glob("*.yaml"))
    assert {KUBERAY_JOB, KUBERAY_NIGHTLY, NIGHTLY_SPEC} <= set(manifests)
    for manifest in [path for path in manifests if path != NIGHTLY_SPEC]:  # nightly.yaml is a job spec
        for document in yaml.safe_load_all(manifest.read_text()):
            if document:
                assert document["apiVersion"] and document["kind"] and document["metadata"]["name"], manifest


def test_rayjob_runs_the_zoo_job_on_the_mounted_spec(kuberay_documents):
    rayjob, config_map = kuberay_documents["RayJob"], kuberay_documents["ConfigMap"]
    assert rayjob["apiVersion"] == "ray.io/v1"
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    _parse_cli(argv)
    assert argv[:3] == ["exactcompress", "zoo", "run"] and argv[argv.index("--address") + 1] == "auto"
    spec_path = Path(argv[-1])
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    assert _mounted_config_map(head, head["containers"][0], spec_path) == config_map["metadata"]["name"]
    ZooJobSpec.model_validate(yaml.safe_load(config_map["data"][spec_path.name]))


def test_rayjob_cluster_autoscales_with_token_auth(kuberay_documents):
    cluster = kuberay_documents["RayJob"]["spec"]["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["authOptions"]["mode"] == "token" and cluster["enableInTreeAutoscaling"] is True
    assert cluster["headGroupSpec"]["rayStartParams"]["dashboard-host"] == "0.0.0.0"
    [workers] = cluster["workerGroupSpecs"]
    assert workers["minReplicas"] == 0 and workers["maxReplicas"] >= 1
    assert all(container["image"] for container in _containers(kuberay_documents["RayJob"]))


def _assert_aws_keys_from_a_secret_only(rayjob: dict) -> None:
    for container in _containers(rayjob):
        env = {item["name"]: item for item in container["env"]}
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["key"] == name
        assert env["AWS_DEFAULT_REGION"]["value"] and "AWS_REGION" not in env  # botocore reads AWS_DEFAULT_REGION


def test_rayjob_takes_aws_keys_from_a_secret_only(kuberay_documents):
    _assert_aws_keys_from_a_secret_only(kuberay_documents["RayJob"])


# --- the nightly run: cron line and KubeRay CronJob ----------------------------------------------------


def test_nightly_spec_is_a_valid_job_spec():
    spec = ZooJobSpec.model_validate(yaml.safe_load(NIGHTLY_SPEC.read_text()))
    assert spec.output.startswith("s3://") and isinstance(spec.source, str) and spec.source.startswith("s3://")


def _crontab_jobs(text: str) -> list[tuple[list[str], str]]:
    """(five schedule fields, command) of each job line; comments and ``NAME=value`` lines skipped."""
    jobs = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#") and not re.match(r"^[A-Za-z_]+=", line):
            fields = line.split(None, 5)
            jobs.append((fields[:5], fields[5]))
    return jobs


def _without_redirections(argv: list[str]) -> list[str]:
    words: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in (">", ">>", "<"):
            skip = True
        elif not re.fullmatch(r"\d?>&\d|\d?>>?\S+", word):
            words.append(word)
    return words


def test_crontab_submits_an_incremental_zoo_run_every_night():
    [(schedule, command)] = _crontab_jobs(CRONTAB.read_text())
    minute, hour, *every = schedule
    assert 0 <= int(minute) < 60 and 0 <= int(hour) < 24 and every == ["*", "*", "*"]
    [cd, submit] = [_without_redirections(argv) for argv in _program_invocations(command)]
    assert cd[0] == "cd"
    _parse_cli(submit)  # every flag exists in this Ray's `ray job submit`
    assert submit[:3] == ["ray", "job", "submit"] and submit[submit.index("--working-dir") + 1] == "."
    entrypoint = submit[submit.index("--") + 1:]
    assert entrypoint[:3] == ["python", "-m", "exactcompress"]
    zoo_run = ["exactcompress", *entrypoint[3:]]
    _parse_cli(zoo_run)
    assert zoo_run[1:3] == ["zoo", "run"] and "--incremental" in zoo_run
    assert zoo_run[zoo_run.index("--address") + 1] == "auto" and zoo_run[-1] == NIGHTLY_SPEC.name
    assert "RAY_AUTH_MODE=token" in command


@pytest.fixture(scope="module")
def nightly_documents() -> dict[str, dict]:
    documents = [doc for doc in yaml.safe_load_all(KUBERAY_NIGHTLY.read_text()) if doc]
    by_name = {doc["metadata"]["name"]: doc for doc in documents if doc["kind"] == "ConfigMap"}
    by_name.update({doc["kind"]: doc for doc in documents if doc["kind"] != "ConfigMap"})
    return by_name


def test_nightly_cronjob_creates_a_rayjob_from_its_template(nightly_documents):
    cronjob = nightly_documents["CronJob"]
    assert cronjob["apiVersion"] == "batch/v1"
    fields = cronjob["spec"]["schedule"].split()
    assert len(fields) == 5 and 0 <= int(fields[0]) < 60 and 0 <= int(fields[1]) < 24 and fields[2:] == ["*"] * 3
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    # with Forbid, a creator pod stuck Pending (which never counts against backoffLimit) would skip every later night
    assert cronjob["spec"]["concurrencyPolicy"] != "Forbid" or cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    [container] = pod["containers"]
    assert not container["image"].startswith("bitnami/")  # its versioned tags were withdrawn in 2025
    assert container["command"][:3] == ["kubectl", "create", "-f"]  # create: the template has a generateName
    template_path = Path(container["command"][3])
    template_map = nightly_documents[_mounted_config_map(pod, container, template_path)]
    rayjob = yaml.safe_load(template_map["data"][template_path.name])
    assert rayjob["apiVersion"] == "ray.io/v1" and rayjob["kind"] == "RayJob"
    assert rayjob["metadata"]["generateName"] and "name" not in rayjob["metadata"]
    # the pod's service account may create RayJobs
    binding, role = nightly_documents["RoleBinding"], nightly_documents["Role"]
    assert {"kind": "ServiceAccount", "name": pod["serviceAccountName"]} in binding["subjects"]
    assert binding["roleRef"]["name"] == role["metadata"]["name"] == nightly_documents["ServiceAccount"]["metadata"]["name"]
    assert {"apiGroups": ["ray.io"], "resources": ["rayjobs"], "verbs": ["create"]} in role["rules"]


def _without_mounts(pod: dict) -> list[dict]:
    return [{key: value for key, value in container.items() if key != "volumeMounts"} for container in pod["containers"]]


def test_nightly_rayjob_runs_an_incremental_zoo_job_like_the_rayjob_manifest(nightly_documents, kuberay_documents):
    template = nightly_documents["exactcompress-nightly-rayjob"]["data"]["rayjob.yaml"]
    rayjob = yaml.safe_load(template)
    argv = shlex.split(rayjob["spec"]["entrypoint"])
    _parse_cli(argv)
    assert argv[:3] == ["exactcompress", "zoo", "run"] and "--incremental" in argv
    assert argv[argv.index("--address") + 1] == "auto"
    spec_path = Path(argv[-1])
    head = rayjob["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    spec_map = nightly_documents[_mounted_config_map(head, head["containers"][0], spec_path)]
    spec = yaml.safe_load(spec_map["data"][spec_path.name])
    ZooJobSpec.model_validate(spec)
    assert spec == yaml.safe_load(NIGHTLY_SPEC.read_text())  # the spec the crontab runs
    assert rayjob["spec"]["shutdownAfterJobFinishes"] is True
    # the one-off RayJob's cluster (token auth, autoscaling workers, AWS keys from the Secret), but for the head's
    # spec volume
    cluster, one_off = rayjob["spec"]["rayClusterSpec"], kuberay_documents["RayJob"]["spec"]["rayClusterSpec"]
    assert cluster == one_off | {"headGroupSpec": cluster["headGroupSpec"]}
    assert _without_mounts(head) == _without_mounts(one_off["headGroupSpec"]["template"]["spec"])
    assert cluster["headGroupSpec"]["rayStartParams"] == one_off["headGroupSpec"]["rayStartParams"]
    assert rayjob["spec"]["rayClusterSpec"]["rayVersion"] == ray.__version__
    assert rayjob["spec"]["rayClusterSpec"]["authOptions"]["mode"] == "token"
    _assert_aws_keys_from_a_secret_only(rayjob)

"""deploy/kubernetes against the software that consumes it, without a cluster.

- values.yaml meets the Zero to JupyterHub chart's values schema (z2jh.py: chart 4.4.0's
  rules, written down there), and a key the chart does not have is refused;
- the user pod KubeSpawner makes from those values (the chart's hub configuration as
  z2jh.py records it, then KubeSpawner's own get_pod_manifest and make_pod) and
  pod.yaml are valid Kubernetes 1.33 pods (kubernetes-validate, strict: an unknown field
  is an error), each with hostUsers: false, the container's seccomp and AppArmor
  profiles, procMount, no capabilities, and an emptyDir at /tmp;
- a wrong key fails at every layer: the chart's schema, KubeSpawner's traits, its pod
  builder and the Kubernetes API schema.

- and, as far as this host can give them, the container's settings hold for cells: an
  ordinary user with no capability at all and no_new_privs (setpriv) runs them.

What this cannot prove (the feature gates, the runtime, the nodes' AppArmor) is said in
deploy/README.md, and the podman test proves the same settings on a real runtime.
"""

from __future__ import annotations

import asyncio
import copy
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml
from z2jh import DEFAULTS as CHART_DEFAULTS
from z2jh import SCHEMA, kubespawner_config, merged

kubernetes_validate = pytest.importorskip("kubernetes_validate")
kubespawner = pytest.importorskip("kubespawner")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = "1.33.0"   # the first release with both feature gates on by default
CONTAINER = {"seccompProfile": {"type": "Unconfined"}, "appArmorProfile": {"type": "Unconfined"},
             "procMount": "Unmasked", "capabilities": {"drop": ["ALL"]},
             "runAsUser": 1000, "runAsGroup": 1000, "allowPrivilegeEscalation": False}


def values() -> dict:
    return yaml.safe_load((DEPLOY / "kubernetes/values.yaml").read_text())


def pod_yaml() -> dict:
    return yaml.safe_load((DEPLOY / "kubernetes/pod.yaml").read_text())


def chart_accepts(v: dict) -> None:
    """helm's check: the values merged over the chart's defaults, against its schema."""
    jsonschema.validate(merged(CHART_DEFAULTS, v), SCHEMA)


def hub_config_is_known(v: dict) -> None:
    """Every hub.config.KubeSpawner / JupyterHub key is a configurable trait (traitlets
    would only warn about the others, and ignore them)."""
    from jupyterhub.app import JupyterHub

    classes = {"KubeSpawner": kubespawner.KubeSpawner, "JupyterHub": JupyterHub}
    for section, cfg in v["hub"]["config"].items():
        known = classes[section].class_trait_names(config=True)
        unknown = sorted(set(cfg) - set(known))
        if unknown:
            raise KeyError(f"hub.config.{section}: {unknown} configure nothing")


def user_pod(v: dict) -> dict:
    """The pod manifest KubeSpawner makes for a student from these values, as the API
    server receives it (camelCase JSON)."""
    from kubernetes_asyncio.client import ApiClient

    async def build() -> dict:
        spawner = kubespawner.KubeSpawner(
            config=kubespawner_config(v),
            user=SimpleNamespace(name="student1", id=1, url="/user/student1/"),
            hub=SimpleNamespace(public_host="", url="http://hub:8081/hub/",
                                base_url="/hub/", api_url="http://hub:8081/hub/api"))
        pod = await spawner.get_pod_manifest()
        await spawner.api.api_client.close()
        return {"apiVersion": "v1", "kind": "Pod",
                **ApiClient().sanitize_for_serialization(pod)}

    return asyncio.run(build())


@pytest.fixture(autouse=True)
def kubeconfig(tmp_path, monkeypatch):
    """KubeSpawner loads a client configuration when it is made: give it a cluster that is
    never contacted (building a manifest makes no request)."""
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "none",
        "clusters": [{"name": "none", "cluster": {"server": "https://127.0.0.1:9"}}],
        "users": [{"name": "none", "user": {"token": "none"}}],
        "contexts": [{"name": "none", "context": {"cluster": "none", "user": "none"}}]}))
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))


def containers(pod: dict) -> list[dict]:
    return pod["spec"].get("initContainers", []) + pod["spec"]["containers"]


def assert_confined_as_cells_need(pod: dict, name: str) -> None:
    kubernetes_validate.validate(pod, K8S, strict=True)
    spec = pod["spec"]
    assert spec["hostUsers"] is False
    (box,) = [c for c in spec["containers"] if c["name"] == name]
    for key, value in CONTAINER.items():
        assert box["securityContext"][key] == value, (key, box["securityContext"])
    # no container of the pod is privileged or given a capability
    for c in containers(pod):
        ctx = c.get("securityContext") or {}
        assert not ctx.get("privileged") and not (ctx.get("capabilities") or {}).get("add"), c
    tmp = next(m for m in box["volumeMounts"] if m["mountPath"] == "/tmp")
    volume = next(v for v in spec["volumes"] if v["name"] == tmp["name"])
    assert "emptyDir" in volume and volume["emptyDir"]["sizeLimit"], volume
    assert box["resources"]["limits"]["memory"], box["resources"]


# -- the chart's values schema ------------------------------------------------------------
def test_values_meet_the_charts_schema_and_every_key_reaches_kubespawner():
    v = values()
    chart_accepts(v)
    hub_config_is_known(v)
    kubespawner_config(v)   # a singleuser key without a rule there is an error


def test_the_chart_refuses_the_key_it_never_had():
    """singleuser.extraContainerConfig (this file's old form) is not a key of the chart:
    helm refuses the whole file."""
    v = values()
    v["singleuser"]["extraContainerConfig"] = {"securityContext": CONTAINER}
    with pytest.raises(jsonschema.ValidationError, match="extraContainerConfig"):
        chart_accepts(v)


# -- the pod KubeSpawner builds, and pod.yaml, for Kubernetes 1.33 ------------------------
def test_the_user_pod_kubespawner_builds_is_a_valid_1_33_pod_confined_as_cells_need():
    pod = user_pod(values())
    assert pod["metadata"]["name"] == "jupyter-student1"
    assert_confined_as_cells_need(pod, "notebook")
    box = pod["spec"]["containers"][0]
    assert box["image"] == "REGISTRY/rootfs-kernel:lab"
    assert box["args"][0] == "jupyterhub-singleuser"
    assert pod["spec"]["securityContext"]["fsGroup"] == 1000
    home = next(m for m in box["volumeMounts"] if m["mountPath"] == "/home/jovyan")
    assert any(v["name"] == home["name"] and "persistentVolumeClaim" in v
               for v in pod["spec"]["volumes"])
    # singleuser.memory.limit 2G: KubeSpawner reads G as GiB, as JupyterHub does
    assert box["resources"]["limits"] == {"cpu": 1.0, "memory": 2 * 1024**3}
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_the_ubuntu_nodes_variant_is_a_valid_pod_too():
    """On Ubuntu 23.10+/24.04 nodes deploy/README.md replaces the Unconfined AppArmor
    profile with doctor's, loaded on the nodes (values.yaml's comment)."""
    v = values()
    ctx = v["hub"]["config"]["KubeSpawner"]["container_security_context"]
    ctx["appArmorProfile"] = {"type": "Localhost", "localhostProfile": "rootfs-kernel-init"}
    pod = user_pod(v)
    kubernetes_validate.validate(pod, K8S, strict=True)
    assert pod["spec"]["containers"][0]["securityContext"]["appArmorProfile"] == \
        ctx["appArmorProfile"]
    text = (DEPLOY / "kubernetes/values.yaml").read_text()
    assert "appArmorProfile: {type: Localhost, localhostProfile: rootfs-kernel-init}" in text


def test_pod_yaml_is_a_valid_1_33_pod_confined_as_cells_need():
    assert_confined_as_cells_need(pod_yaml(), "lab")


def test_the_pods_need_the_fields_of_kubernetes_1_30():
    """appArmorProfile came with 1.30: older API servers refuse the pods outright (the
    gates of 1.30-1.32 are deploy/README.md's matter)."""
    for pod in (pod_yaml(), user_pod(values())):
        for version in ("1.30.0", "1.33.0", kubernetes_validate.latest_version() + ".0"):
            kubernetes_validate.validate(pod, version, strict=True)
        with pytest.raises(kubernetes_validate.ValidationError, match="appArmorProfile"):
            kubernetes_validate.validate(pod, "1.29.0", strict=True)


def test_blocking_the_metadata_server_with_iptables_adds_a_privileged_container():
    """The chart's default cloudMetadata.blockWithIptables: true puts a privileged init
    container with NET_ADMIN in every user pod; values.yaml turns it off (deploy/README.md:
    the chart's NetworkPolicy blocks the same address)."""
    v = values()
    assert v["singleuser"]["cloudMetadata"] == {"blockWithIptables": False}
    assert "initContainers" not in user_pod(v)["spec"]
    v["singleuser"]["cloudMetadata"]["blockWithIptables"] = True
    pod = user_pod(v)
    kubernetes_validate.validate(pod, K8S, strict=True)
    (init,) = pod["spec"]["initContainers"]
    assert init["securityContext"]["privileged"] is True
    assert init["securityContext"]["capabilities"]["add"] == ["NET_ADMIN"]
    assert "169.254.169.254" in init["command"]


ORDINARY = os.environ.get("ROOTFS_TEST_USER", "rkuser")   # scripts/test.sh's ordinary user
CELL = """
import rootfs_kernel
r = rootfs_kernel.run("grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; id -u; "
                      "mount -t tmpfs none /mnt && echo mounted")
print(r.status, r.stdout, r.stderr, sep="|")
"""


def _no_ordinary_user() -> str | None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "needs root and setpriv(1) to drop every capability"
    try:
        pwd.getpwnam(ORDINARY)
    except KeyError:
        return f"no user {ORDINARY} (scripts/test.sh makes it)"
    return None


@pytest.mark.rootonly
@pytest.mark.skipif(bool(_no_ordinary_user()), reason=_no_ordinary_user() or "")
def test_cells_run_as_the_pods_container_settings_leave_the_server():
    """runAsUser 1000, capabilities drop [ALL] (an empty bounding set), allowPrivilegeEscalation
    false (no_new_privs), given by setpriv(1): cells still run, as root of their own user
    namespace, and may mount."""
    user = pwd.getpwnam(ORDINARY)
    home = tempfile.mkdtemp(prefix="rk-capless-")
    try:
        os.chown(home, user.pw_uid, user.pw_gid)
        done = subprocess.run(
            ["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
             "--bounding-set=-all", "--inh-caps=-all", "--no-new-privs",
             "env", "-i", "PATH=/usr/bin:/bin", f"HOME={home}", f"XDG_DATA_HOME={home}/data",
             f"XDG_CACHE_HOME={home}/cache", sys.executable, "-c", CELL],
            capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    status, stdout, stderr = done.stdout.strip().split("|")
    assert done.returncode == 0 and status == "0", done
    # the cell: root with every capability of its own user namespace, no_new_privs kept
    caps, nnp, uid, mounted = stdout.splitlines()
    assert caps.startswith("CapEff:") and int(caps.split()[1], 16) != 0, done
    assert (nnp, uid, mounted) == ("NoNewPrivs:\t1", "0", "mounted"), done


# -- a wrong key fails, whichever layer it is in ------------------------------------------
def _with(path: str, value: object) -> dict:
    v = copy.deepcopy(values())
    *parents, last = path.split(".")
    node = v
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return v


@pytest.mark.parametrize(("path", "value", "refused_by"), [
    ("singleuser.extraContainerConfig", {}, "the chart"),
    ("singleuser.storage.extraVolume", [], "the chart"),
    ("hub.config.kubeSpawner", {}, "the chart"),
    ("hub.config.KubeSpawner.container_security_contxt", {}, "KubeSpawner's traits"),
    ("singleuser.extraPodConfig.hostUser", False, "KubeSpawner's pod builder"),
    ("hub.config.KubeSpawner.container_security_context.procMnt", "Unmasked",
     "Kubernetes 1.33"),
    ("singleuser.extraPodConfig.hostUsers", "no", "Kubernetes 1.33"),
])
def test_a_wrong_key_is_refused(path, value, refused_by):
    v = _with(path, value)
    layers = [("the chart", chart_accepts), ("KubeSpawner's traits", hub_config_is_known),
              ("KubeSpawner's pod builder", user_pod),
              ("Kubernetes 1.33", lambda v: kubernetes_validate.validate(
                  user_pod(v), K8S, strict=True))]
    for name, check in layers:
        if name == refused_by:
            with pytest.raises((jsonschema.ValidationError, KeyError, ValueError)):
                check(v)
            return
        check(v)   # the layers before it let it through


@pytest.mark.parametrize("key", ["procmount", "hostUser"])
def test_a_wrong_key_in_pod_yaml_is_refused(key):
    pod = pod_yaml()
    if key == "hostUser":
        pod["spec"]["hostUser"] = pod["spec"].pop("hostUsers")
    else:
        ctx = pod["spec"]["containers"][0]["securityContext"]
        ctx[key] = ctx.pop("procMount")
    with pytest.raises(kubernetes_validate.ValidationError, match=key):
        kubernetes_validate.validate(pod, K8S, strict=True)


# -- the README ---------------------------------------------------------------------------
def test_the_readme_says_what_each_setting_is_for_and_what_the_cluster_needs():
    text = (DEPLOY / "README.md").read_text()
    for word in ("hostUsers: false", "seccompProfile", "appArmorProfile",
                 "procMount: Unmasked", "capabilities", "--cap-add SYS_ADMIN",
                 "seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined",
                 "UserNamespacesSupport", "ProcMountType", "containerd 2.0", "CRI-O",
                 "runc 1.2", "crun", "Linux 6.3", "localhostProfile: rootfs-kernel-init",
                 "apparmor_restrict_unprivileged_userns", "blockWithIptables",
                 "container_security_context", "extraPodConfig", "proved here",
                 "on paper"):
        assert word in text, word


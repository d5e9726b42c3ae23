"""What the Zero to JupyterHub Helm chart does with a values file, written down as data.

No cluster and no GitHub here, so the chart's rules are this project's own record of them,
read from the chart's sources at tag 4.4.0 (jupyterhub/values.schema.yaml,
jupyterhub/values.yaml and files/hub/jupyterhub_config.py; JupyterHub 5.5.0, KubeSpawner
7.0.0, kubeVersion >=1.28). The singleuser keys are the same from chart 3.3.8 to 4.4.0.

- SCHEMA: the parts of the chart's values schema a values file meets: which keys the top
  level, `hub`, `hub.config` and `singleuser` accept (each with additionalProperties:
  false, as the chart has them), and the types of the singleuser keys our file sets. helm
  validates the values merged over the chart's defaults, so DEFAULTS comes first.
- kubespawner_config(): how the chart's hub configuration hands those values to
  KubeSpawner (traitlets), for the keys our file uses; a key it has no rule for is an
  error, so that a value never silently stops short of the pod.
"""

from __future__ import annotations

import copy

from traitlets.config import Config

CHART = "4.4.0"

# -- the values schema --------------------------------------------------------------------
TOP_KEYS = ("enabled", "fullnameOverride", "nameOverride", "imagePullSecret",
            "imagePullSecrets", "hub", "proxy", "singleuser", "scheduling", "ingress",
            "httpRoute", "prePuller", "custom", "cull", "debug", "rbac", "global")
HUB_KEYS = ("activeServerLimit", "allowNamedServers", "annotations", "args",
            "authenticatePrometheus", "baseUrl", "command", "concurrentSpawnLimit", "config",
            "consecutiveFailureLimit", "containerSecurityContext", "cookieSecret", "db",
            "deploymentStrategy", "existingSecret", "extraConfig", "extraContainers",
            "extraEnv", "extraFiles", "extraPodSpec", "extraVolumeMounts", "extraVolumes",
            "fsGid", "image", "initContainers", "labels", "lifecycle", "livenessProbe",
            "loadRoles", "namedServerLimitPerUser", "networkPolicy", "nodeSelector", "pdb",
            "podSecurityContext", "readinessProbe", "redirectToServer", "resources",
            "revisionHistoryLimit", "service", "serviceAccount", "services",
            "shutdownOnLogout", "templatePaths", "templateVars", "tolerations")
SINGLEUSER_KEYS = ("allowPrivilegeEscalation", "cloudMetadata", "cmd", "cpu", "defaultUrl",
                   "events", "extraAnnotations", "extraContainers", "extraEnv", "extraFiles",
                   "extraLabels", "extraNodeAffinity", "extraPodAffinity",
                   "extraPodAntiAffinity", "extraPodConfig", "extraResource",
                   "extraTolerations", "fsGid", "image", "initContainers", "lifecycleHooks",
                   "memory", "networkPolicy", "networkTools", "nodeSelector",
                   "podNameTemplate", "profileList", "serviceAccountName", "startTimeout",
                   "storage", "uid")


def _closed(keys: tuple[str, ...], **typed: dict) -> dict:
    return {"type": "object", "additionalProperties": False,
            "properties": {k: typed.get(k, {}) for k in keys}}


def _nullable(*types: str) -> dict:
    return {"type": [*types, "null"]}


SCHEMA = _closed(
    TOP_KEYS,
    hub=_closed(HUB_KEYS, config={
        # traitlets sections: Configurable class names, capitalised, each an object
        "type": "object", "additionalProperties": False,
        "patternProperties": {"^[A-Z].*$": {"type": "object"}}}),
    singleuser=_closed(
        SINGLEUSER_KEYS,
        image={"type": "object", "additionalProperties": False, "required": ["name", "tag"],
               "properties": {"name": {"type": "string"}, "tag": {"type": "string"},
                              "pullPolicy": {"enum": [None, "", "IfNotPresent", "Always",
                                                      "Never"]},
                              "pullSecrets": {"type": "array"}}},
        uid=_nullable("integer"), fsGid=_nullable("integer"),
        cmd=_nullable("array", "string"), defaultUrl=_nullable("string"),
        allowPrivilegeEscalation=_nullable("boolean"),
        extraPodConfig={"type": "object"},
        cloudMetadata={"type": "object", "additionalProperties": False,
                       "required": ["blockWithIptables", "ip"],
                       "properties": {"blockWithIptables": {"type": "boolean"},
                                      "ip": {"type": "string"}}},
        memory=_closed(("limit", "guarantee"), limit=_nullable("number", "string"),
                       guarantee=_nullable("number", "string")),
        cpu=_closed(("limit", "guarantee"), limit=_nullable("number"),
                    guarantee=_nullable("number")),
        storage={**_closed(("type", "extraLabels", "extraVolumes", "extraVolumeMounts",
                            "static", "capacity", "homeMountPath", "dynamic"),
                           type={"enum": ["dynamic", "static", "none"]},
                           extraVolumes=_nullable("object", "array"),
                           extraVolumeMounts=_nullable("object", "array"),
                           homeMountPath={"type": "string"}),
                 "required": ["type", "homeMountPath"]}))

# The chart's defaults for what kubespawner_config() reads (values.yaml at 4.4.0; the
# network tools' tag is set to the chart's version on release).
DEFAULTS = {"singleuser": {
    "uid": 1000, "fsGid": 100, "cmd": "jupyterhub-singleuser", "defaultUrl": None,
    "allowPrivilegeEscalation": False, "extraPodConfig": {}, "extraEnv": {},
    "extraLabels": {"hub.jupyter.org/network-access-hub": "true"},
    "image": {"name": "quay.io/jupyterhub/k8s-singleuser-sample", "tag": CHART},
    "memory": {"limit": None, "guarantee": "1G"}, "cpu": {"limit": None, "guarantee": None},
    "cloudMetadata": {"blockWithIptables": True, "ip": "169.254.169.254"},
    "networkTools": {"image": {"name": "quay.io/jupyterhub/k8s-network-tools",
                               "tag": CHART}},
    "storage": {"type": "dynamic", "extraVolumes": None, "extraVolumeMounts": None,
                "capacity": "10Gi", "homeMountPath": "/home/jovyan",
                "dynamic": {"volumeNameTemplate": "volume-{user_server}",
                            "storageAccessModes": ["ReadWriteOnce"]}}},
    "hub": {"config": {}}}


def merged(defaults: dict, values: dict) -> dict:
    """helm's merge of a values file over the chart's defaults: maps merge, the rest
    (lists included) is replaced."""
    out = copy.deepcopy(defaults)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merged(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# -- values -> KubeSpawner ---------------------------------------------------------------
# singleuser key -> KubeSpawner trait, set when not null (the chart's passthrough loop).
PASSTHROUGH = {"uid": "uid", "fsGid": "fs_gid", "extraPodConfig": "extra_pod_config",
               "extraEnv": "environment", "extraLabels": "extra_labels",
               "memory.limit": "mem_limit", "memory.guarantee": "mem_guarantee",
               "cpu.limit": "cpu_limit", "cpu.guarantee": "cpu_guarantee"}
# singleuser keys with rules of their own below.
HANDLED = {"image", "allowPrivilegeEscalation", "cmd", "defaultUrl", "cloudMetadata",
           "networkTools", "storage"}


def _get(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = (tree or {}).get(part)
    return tree


def kubespawner_config(values: dict) -> Config:
    """The configuration the chart's hub gives KubeSpawner for this values file."""
    unknown = {k for k in values.get("singleuser", {})
               if k not in HANDLED and k not in {p.split(".")[0] for p in PASSTHROUGH}}
    if unknown:
        raise KeyError(f"no rule here for singleuser.{sorted(unknown)}: add the chart's")
    v = merged(DEFAULTS, values)
    su = v["singleuser"]
    c = Config()
    for key, trait in PASSTHROUGH.items():
        if _get(su, key) is not None:
            c.KubeSpawner[trait] = _get(su, key)
    c.KubeSpawner.image = f"{su['image']['name']}:{su['image']['tag']}"
    c.KubeSpawner.allow_privilege_escalation = su["allowPrivilegeEscalation"]
    c.Spawner.cmd = su["cmd"]
    if su["defaultUrl"] is not None:
        c.Spawner.default_url = su["defaultUrl"]
    storage = su["storage"]
    volumes, mounts = {}, {}
    if storage["type"] == "dynamic":   # the home volume: a PVC of the user's
        name = storage["dynamic"]["volumeNameTemplate"]
        volumes[name] = {"name": name, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
        mounts[name] = {"name": name, "mountPath": storage["homeMountPath"]}
    for volume in storage["extraVolumes"] or []:
        volumes[volume["name"]] = volume
    for i, mount in enumerate(storage["extraVolumeMounts"] or []):
        mounts[f"{i}-{mount['name']}"] = mount
    c.KubeSpawner.volumes, c.KubeSpawner.volume_mounts = volumes, mounts
    metadata = su["cloudMetadata"]
    if metadata["blockWithIptables"]:   # a privileged init container in every user pod
        tools = su["networkTools"]["image"]
        c.KubeSpawner.init_containers = [{
            "name": "block-cloud-metadata", "image": f"{tools['name']}:{tools['tag']}",
            "command": ["iptables", "--append", "OUTPUT", "--protocol", "tcp",
                        "--destination", metadata["ip"], "--destination-port", "80",
                        "--jump", "DROP"],
            "securityContext": {"privileged": True, "runAsUser": 0,
                                "capabilities": {"add": ["NET_ADMIN"]}}}]
    for section, cfg in v["hub"]["config"].items():   # hub.config: traitlets as they are
        c[section].update(cfg)
    return c

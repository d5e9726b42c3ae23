"""deploy/kubernetes is on paper (no cluster in these tests): its files parse, ask for what
the podman test proves a container needs, and deploy/README.md explains every setting."""

from __future__ import annotations

from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
NEEDED = {"seccompProfile": {"type": "Unconfined"}, "appArmorProfile": {"type": "Unconfined"},
          "procMount": "Unmasked"}


def test_values_and_pod_ask_for_what_rootless_cells_need():
    values = yaml.safe_load((DEPLOY / "kubernetes/values.yaml").read_text())
    pod = yaml.safe_load((DEPLOY / "kubernetes/pod.yaml").read_text())
    single = values["singleuser"]
    contexts = [single["extraContainerConfig"]["securityContext"],
                pod["spec"]["containers"][0]["securityContext"]]
    for ctx in contexts:
        for key, value in NEEDED.items():
            assert ctx[key] == value, (key, ctx)
        assert ctx["runAsUser"] == 1000 and ctx["allowPrivilegeEscalation"] is False
    assert single["extraPodConfig"]["hostUsers"] is False and pod["spec"]["hostUsers"] is False
    # %keep and %export need /tmp off the container's overlayfs root
    assert {"name": "tmp", "mountPath": "/tmp"} in single["storage"]["extraVolumeMounts"]
    assert any(m["mountPath"] == "/tmp" for m in pod["spec"]["containers"][0]["volumeMounts"])


def test_the_readme_explains_each_setting():
    text = (DEPLOY / "README.md").read_text()
    for word in ("hostUsers: false", "capabilities.add: [SYS_ADMIN]", "seccompProfile",
                 "appArmorProfile", "procMount: Unmasked", "--cap-add SYS_ADMIN",
                 "seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"):
        assert word in text, word

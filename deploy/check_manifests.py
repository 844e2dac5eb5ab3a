"""Checks of the deploy manifests (run by ``bash sdk/test.sh``): deploy/k8s and deploy/systemd.

Not a Kubernetes API server: the structure a server would refuse, and the links between the
documents that it would accept but that would not work (a selector matching no pod, a probe
on a port the container does not open, a secret nobody defines).
"""

import configparser
import pathlib
import tomllib

import pytest
import yaml

DEPLOY = pathlib.Path(__file__).parent
K8S = DEPLOY / "k8s"


def documents():
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    return docs


DOCS = documents()


def of_kind(kind):
    return [d for _, d in DOCS if d["kind"] == kind]


def one(kind):
    found = of_kind(kind)
    assert len(found) == 1, f"one {kind} expected, found {len(found)}"
    return found[0]


def selects(selector, labels):
    return selector and all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name,doc", DOCS, ids=[f"{n}:{d['kind']}" for n, d in DOCS])
def test_every_document_names_its_api_kind_and_name(name, doc):
    assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], name
    assert isinstance(doc.get("kind"), str) and doc["kind"], name
    assert doc.get("metadata", {}).get("name"), name


def test_the_statefulset_runs_three_nodes_with_their_own_volumes():
    sts = one("StatefulSet")
    spec = sts["spec"]
    pod = spec["template"]
    assert spec["replicas"] == 3
    assert selects(spec["selector"]["matchLabels"], pod["metadata"]["labels"])
    [container] = pod["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"] for c in spec["volumeClaimTemplates"]}
    volumes = {v["name"] for v in pod["spec"].get("volumes", [])}
    assert set(mounts) <= claims | volumes, "every mount has a volume or a claim"
    assert mounts["data"] == "/data"
    env = {e["name"]: e for e in container["env"]}
    assert env["BELFRY_ID_FROM_HOSTNAME"]["value"] == "true"
    members = env["BELFRY_INITIAL_CLUSTER"]["value"].split(",")
    assert [m.split("=")[0] for m in members] == ["1", "2", "3"]
    for i, m in enumerate(members):
        assert m.split("=")[1].startswith(f"{sts['metadata']['name']}-{i}.{spec['serviceName']}."), m
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False


def test_probes_use_belfry_health_routes_on_an_open_port():
    [container] = one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for probe in ("readinessProbe", "livenessProbe"):
        port = container[probe]["httpGet"]["port"]
        assert port in ports or port in ports.values(), f"{probe} port {port}"


def test_services_select_the_pods_and_the_headless_one_serves_the_statefulset():
    sts = one("StatefulSet")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    [container] = sts["spec"]["template"]["spec"]["containers"]
    port_names = {p["name"] for p in container["ports"]}
    services = {s["metadata"]["name"]: s for s in of_kind("Service")}
    headless = services[sts["spec"]["serviceName"]]
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"].get("publishNotReadyAddresses") is True, "peers find each other before any is ready"
    for name, svc in services.items():
        assert selects(svc["spec"]["selector"], labels), name
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in port_names, f"{name}: {p}"


def test_the_disruption_budget_covers_the_pods_and_keeps_a_majority():
    pdb = one("PodDisruptionBudget")
    labels = one("StatefulSet")["spec"]["template"]["metadata"]["labels"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1


def test_every_referenced_secret_key_and_config_map_is_defined():
    pod = one("StatefulSet")["spec"]["template"]["spec"]
    [container] = pod["containers"]
    secrets = {s["metadata"]["name"]: s for s in of_kind("Secret")}
    maps = {m["metadata"]["name"] for m in of_kind("ConfigMap")}
    for e in container["env"]:
        ref = e.get("valueFrom", {}).get("secretKeyRef")
        if ref:
            assert ref["name"] in secrets, ref
            assert ref["key"] in secrets[ref["name"]]["stringData"], ref
    for v in pod["volumes"]:
        if "configMap" in v:
            assert v["configMap"]["name"] in maps, v
    # belfry-certs is made from `belfry certs` output, as secret.example.yaml shows.
    assert "belfry-certs" in (K8S / "secret.example.yaml").read_text()


def test_the_config_map_holds_belfry_toml_with_pod_values():
    config = tomllib.loads(one("ConfigMap")["data"]["belfry.toml"])
    reference = tomllib.loads((DEPLOY / "belfry.toml").read_text())
    # The id comes from the pod name; every other setting is there.
    assert set(config) == set(reference) - {"id"}
    assert config["http-addr"].startswith("0.0.0.0:") and config["grpc-addr"].startswith("0.0.0.0:")
    assert config["data-dir"] == "/data"
    [container] = one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    ports = {p["containerPort"] for p in container["ports"]}
    assert {int(config["http-addr"].rsplit(":", 1)[1]), int(config["grpc-addr"].rsplit(":", 1)[1])} == ports


def test_the_systemd_unit_is_hardened_and_restarts():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read(DEPLOY / "systemd" / "belfry.service")
    service = unit["Service"]
    assert service["ExecStart"].startswith("/usr/local/bin/belfry serve ")
    assert service["Restart"] == "on-failure"
    assert service["User"] and service["StateDirectory"] == "belfry"
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes"}.items():
        assert service[key] == value, key
    assert "EnvironmentFile" in service
    assert unit["Install"]["WantedBy"] == "multi-user.target"

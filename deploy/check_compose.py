"""pytest: docker-compose.yml publishes on 127.0.0.1 by default and health-checks every server."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
# tests/chaos/run.sh sets these to free ports; they must keep moving the host ports.
PORT_VARS = {"n1": "BELFRY_N1_PORT", "n2": "BELFRY_N2_PORT", "n3": "BELFRY_N3_PORT",
             "sink": "BELFRY_SINK_PORT", "sink-slow": "BELFRY_SLOW_SINK_PORT"}


def test_published_ports_bind_to_the_publish_address():
    published = {name for name, s in SERVICES.items() if s.get("ports")}
    assert published == set(PORT_VARS)
    for name, var in PORT_VARS.items():
        (mapping,) = SERVICES[name]["ports"]
        assert re.fullmatch(r"\$\{BELFRY_PUBLISH_ADDR:-127\.0\.0\.1\}:\$\{%s:-\d+\}:\d+" % var, mapping), mapping


def test_every_long_running_service_has_a_healthcheck():
    for name in PORT_VARS:
        test = SERVICES[name]["healthcheck"]["test"]
        assert test[:4] == ["CMD", "/usr/local/bin/belfry", "probe", "--quiet"], name
    for name in ("sink", "sink-slow"):
        url = SERVICES[name]["healthcheck"]["test"][4]
        # Any other path on a sink is recorded as a delivery, which the chaos oracle would count.
        assert re.fullmatch(r"http://127\.0\.0\.1:7300/_sink/[a-z]+", url), url


def test_header_documents_the_publish_address():
    header = (ROOT / "docker-compose.yml").read_text().split("version:")[0]
    assert "BELFRY_PUBLISH_ADDR" in header and "127.0.0.1" in header

"""The production stack (docker-compose.yml) and the worker image (Dockerfile), without Docker.

`docker-compose config` validates the compose file and prints it normalised (defaults filled
in, paths made absolute, anchors merged); the tests read that output with `yaml.safe_load`.
Its security is checked against the configuration files it mounts (Prometheus, Grafana, the
Kafka ACL table) and against the secrets `deploy/dev-secrets.sh` writes (run for real, see
conftest.py); the Kafka container's start and the one-shot kafka-init run here with stand-ins
for Kafka's command-line tools. The Dockerfile is checked statically.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ops.conftest import DEV_SECRETS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SECRET = "grafana_admin_password"
STATE_DIR = "/var/lib/cover2"
# Three Kafka nodes, each a broker and a KRaft controller; every client bootstraps from all.
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
CLIENT_PORT, CONTROLLER_PORT = 9093, 9094
BOOTSTRAP = ",".join(f"{node}:{CLIENT_PORT}" for node in KAFKA_NODES)
BROKER = ",".join(f"kafka://{node}:{CLIENT_PORT}" for node in KAFKA_NODES)
SERVICES = {*KAFKA_NODES, "kafka-init", "worker-1", "worker-2", "feed", "prometheus",
            "alertmanager", "grafana"}
# Runs to completion once; the services after it wait for its exit code, not its health.
ONE_SHOT = {"kafka-init"}
HEALTHY = {"service_healthy", "service_completed_successfully"}
WORKERS = ("worker-1", "worker-2")
KAFKA_CLIENTS = {"worker-1": "cover2-worker", "worker-2": "cover2-worker", "feed": "cover2-feed"}
ADMIN = "cover2-admin"
DEPLOY = ROOT / "deploy"
KAFKA_DEPLOY = DEPLOY / "kafka"
ACL_FILE = KAFKA_DEPLOY / "acls.txt"
PROMETHEUS_CONFIG = ROOT / "prometheus" / "prometheus.yml"
DATASOURCE = ROOT / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
SECRETS = "/run/secrets"
# What each service may read in /run/secrets: its own credentials and certificates, the CA.
SERVICE_SECRETS = {
    **{node: {"ca.crt", f"{node}.keystore.pem", "kafka_admin_password"} for node in KAFKA_NODES},
    "kafka-init": {"ca.crt", "kafka_admin_password", "kafka_worker_password",
                   "kafka_feed_password"},
    "worker-1": {"ca.crt", "kafka_worker_password", "web-config.yml", "worker.crt", "worker.key"},
    "worker-2": {"ca.crt", "kafka_worker_password", "web-config.yml", "worker.crt", "worker.key"},
    "feed": {"ca.crt", "kafka_feed_password"},
    "prometheus": {"ca.crt", "prometheus_scrape_password", "prometheus-web.yml",
                   "prometheus.crt", "prometheus.key"},
    "alertmanager": {"ca.crt", "alertmanager_healthcheck_password", "alertmanager-web.yml",
                     "alertmanager.crt", "alertmanager.key"},
    "grafana": {"ca.crt", "grafana_admin_password", "grafana_datasource_password",
                "grafana.crt", "grafana.key"},
}
INPUTS = ["ccp.trades", "ccp.prices", "ccp.collateral", "ccp.settlements", "ccp.members",
          "ccp.instruments", "ccp.scenarios", "ccp.resources"]
OUTPUTS = ["ccp.cover2", "ccp.margin-calls", "ccp.dead-letter"]


def grant(principal: str, operations: str, resource: str, pattern: str,
          names: list[str]) -> set[tuple[str, str, str, str, str]]:
    return {(f"User:{principal}", operation, resource, pattern, name)
            for operation in operations.split(",") for name in names}


# Every (principal, operation, resource type, pattern type, resource name) the stack allows;
# with allow.everyone.if.no.acl.found=false nothing else is allowed to anyone but the admin.
EXPECTED_ACLS = (
    grant("cover2-worker", "Read", "topic", "literal", INPUTS)
    | grant("cover2-worker", "Write", "topic", "literal", OUTPUTS)
    | grant("cover2-worker", "Read,Write", "topic", "literal", ["ccp.partition-views"])
    # A message read outside its member's home partition is forwarded to the right one.
    | grant("cover2-worker", "Write", "topic", "literal", ["ccp.trades", "ccp.collateral"])
    | grant("cover2-worker", "Describe,Create", "topic", "prefixed", ["ccp."])
    # The group cover2, and faust's cover2-<worker>-<pid>-<time>.
    | grant("cover2-worker", "Read", "group", "prefixed", ["cover2"])
    | grant("cover2-feed", "Write,Describe", "topic", "literal", INPUTS)
)


# --- running docker-compose ------------------------------------------------------------------

def compose(*args: str, demo: bool = True) -> str:
    """`docker-compose [--profile demo] ARGS` on the stack's file; its output."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is not installed (Debian: apt-get install docker-compose)")
    profile = ["--profile", "demo"] if demo else []
    result = subprocess.run([binary, "-f", str(COMPOSE_FILE), *profile, *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, (
        f"docker-compose {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result.stdout


@functools.cache
def config() -> dict[str, Any]:
    document = yaml.safe_load(compose("config"))
    assert isinstance(document, dict)
    return document


def services() -> dict[str, dict[str, Any]]:
    return config()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command") or []
    return shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]


def flag(service: dict[str, Any], name: str) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` in the service's command."""
    args = command(service)
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def mounts(service: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(source, target, read-only) of each volume, from the short or the long syntax."""
    out = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, target, *mode = volume.split(":")
            out.append((source, target, bool(mode) and "ro" in mode[0].split(",")))
        else:
            out.append((str(volume.get("source")), str(volume["target"]),
                        str(volume.get("read_only")).lower() == "true"))
    return out


def published(service: dict[str, Any]) -> dict[str, str]:
    """Host port -> container port."""
    out = {}
    for port in service.get("ports") or []:
        if isinstance(port, str):
            *_, host, container = port.split(":")
            out[host] = container.split("/")[0]
        else:
            out[str(port.get("published"))] = str(port["target"])
    return out


def depends_on(service: dict[str, Any]) -> dict[str, str | None]:
    needs = service.get("depends_on") or {}
    if isinstance(needs, list):
        return dict.fromkeys(needs)
    return {name: (spec or {}).get("condition") for name, spec in needs.items()}


def secrets_of(service: dict[str, Any]) -> dict[str, str]:
    """Secret name -> where it is mounted in the service's containers."""
    out = {}
    for secret in service.get("secrets") or []:
        if isinstance(secret, str):
            source, target = secret, None
        else:
            source, target = secret["source"], secret.get("target")
        target = target or source
        out[source] = target if target.startswith("/") else f"{SECRETS}/{target}"
    return out


def unescaped(value: str) -> str:
    """A value as the container sees it: `docker-compose config` prints a literal $ as $$."""
    return value.replace("$$", "$")


def kafka_settings(node: str = KAFKA_NODES[0]) -> dict[str, str]:
    """A Kafka node's server properties, named as deploy/kafka/start.sh names them."""
    out = {}
    for key, value in environment(services()[node]).items():
        if key.startswith("KAFKA_") and not key.endswith("_OPTS"):
            name = key.removeprefix("KAFKA_").lower().replace("_", ".")
            out[name.replace("...", "-").replace("..", "_")] = unescaped(value)
    return out


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """NAME://HOST:PORT,... -> {NAME: (HOST, PORT)}."""
    out = {}
    for listener in value.split(","):
        name, _, address = listener.partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


def protocols(node: str = KAFKA_NODES[0]) -> dict[str, str]:
    pairs = kafka_settings(node)["listener.security.protocol.map"].split(",")
    return dict(pair.split(":", 1) for pair in pairs)


def voters(node: str) -> dict[int, tuple[str, int]]:
    """controller.quorum.voters: {node id: (host, port)}."""
    out = {}
    for voter in kafka_settings(node)["controller.quorum.voters"].split(","):
        node_id, _, address = voter.partition("@")
        host, _, port = address.rpartition(":")
        out[int(node_id)] = (host, int(port))
    return out


def properties(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def jaas_login(jaas: str) -> tuple[str, str, str]:
    """(login module, username, password reference) of a one-login JAAS value."""
    found = re.fullmatch(r'\s*(\S+) required username="([^"]+)" password="([^"]+)";\s*', jaas)
    assert found, f"not one JAAS login with a username and a password: {jaas}"
    return found[1], found[2], found[3]


def acl_table() -> set[tuple[str, str, str, str, str]]:
    """The grants of deploy/kafka/acls.txt, one tuple per operation and resource."""
    out: set[tuple[str, str, str, str, str]] = set()
    for line in ACL_FILE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            principal, operations, resource, pattern, *names = line.split()
            assert names, line
            out |= {(principal, operation, resource, pattern, name)
                    for operation in operations.split(",") for name in names}
    return out


STUB = """#!/usr/bin/env bash
# A stand-in for one of Kafka's command-line tools: records its arguments, and the files
# its @file and --add-config-file arguments name, as they are when it runs.
{ printf 'CALL %s' "$(basename "$0")"; printf ' %q' "$@"; echo; } >>"$STUB_LOG"
previous=""
for argument in "$@"; do
    if [[ $argument == @* ]]; then
        sed 's/^/FILE /' "${argument#@}" >>"$STUB_LOG"
        stat -c 'MODE %a' "${argument#@}" >>"$STUB_LOG"
    elif [[ $previous == --add-config-file ]]; then
        sed 's/^/FILE /' "$argument" >>"$STUB_LOG"
        stat -c 'MODE %a' "$argument" >>"$STUB_LOG"
    fi
    previous=$argument
done
if [[ $(basename "$0") == kafka-server-start.sh ]]; then
    sed 's/^/CONFIG /' "$1" >>"$STUB_LOG"
fi
"""


def run_with_stubs(script: Path, tmp_path: Path, env: dict[str, str],
                   tools: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run ``script`` with stand-ins for Kafka's ``tools``; the result and the stand-ins' log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in tools:
        (bin_dir / tool).write_text(STUB)
        (bin_dir / tool).chmod(0o755)
    log = tmp_path / "stub.log"
    log.touch()
    done = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=60,
                          check=False, env={"PATH": os.environ["PATH"], "STUB_LOG": str(log),
                                            "BIN_DIR": str(bin_dir), **env})
    return done, log.read_text().splitlines()


def calls(log: list[str], tool: str) -> list[list[str]]:
    return [shlex.split(line)[2:] for line in log if line.startswith(f"CALL {tool} ")]


# --- the compose file --------------------------------------------------------------------------

@pytest.mark.parametrize("demo", [False, True], ids=["default", "demo-profile"])
def test_compose_file_is_valid(demo: bool) -> None:
    compose("config", "-q", demo=demo)


def test_services_and_volumes() -> None:
    assert set(compose("config", "--services").split()) == SERVICES
    volumes = set(compose("config", "--volumes").split())
    assert {*(f"{node}-data" for node in KAFKA_NODES), "worker-1-state",
            "worker-2-state"} <= volumes
    assert "kafka-data" not in volumes, "the single node's volume is gone with it"
    assert set(services()) == SERVICES


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_kafka_is_pinned_and_runs_in_kraft_mode(node: str) -> None:
    kafka = services()[node]
    assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", kafka["image"]), kafka["image"]
    assert kafka["restart"] == "unless-stopped"
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["CLUSTER_ID"]
    assert env["KAFKA_ADVERTISED_LISTENERS"] == f"SASL_SSL://{node}:{CLIENT_PORT}"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"  # cover2 creates its topics
    data = [source for source, target, _ in mounts(kafka) if target == env["KAFKA_LOG_DIRS"]]
    assert data and data[0] in config()["volumes"], "Kafka's log dirs are on a named volume"
    for name, service in services().items():
        assert "zookeeper" not in name and "zookeeper" not in str(service.get("image", ""))
        assert not any("ZOOKEEPER" in key for key in environment(service)), name


def test_three_kafka_nodes_form_one_cluster_each_a_broker_and_a_controller() -> None:
    nodes = {node: environment(services()[node]) for node in KAFKA_NODES}
    # The same image, cluster id and configuration but for who each node is.
    assert len({services()[node]["image"] for node in KAFKA_NODES}) == 1
    assert len({env["CLUSTER_ID"] for env in nodes.values()}) == 1
    own = {"KAFKA_NODE_ID", "KAFKA_ADVERTISED_LISTENERS", "KAFKA_SSL_KEYSTORE_LOCATION"}
    shared = [{key: value for key, value in env.items() if key not in own}
              for env in nodes.values()]
    assert all(settings == shared[0] for settings in shared)
    ids = {node: int(env["KAFKA_NODE_ID"]) for node, env in nodes.items()}
    assert sorted(ids.values()) == [1, 2, 3]
    for node in KAFKA_NODES:
        settings = kafka_settings(node)
        assert set(settings["process.roles"].split(",")) == {"broker", "controller"}
        # Every node is a voter of the one quorum, at the address of its controller listener.
        assert voters(node) == {ids[name]: (name, CONTROLLER_PORT) for name in KAFKA_NODES}
        assert listeners(settings["listeners"])["CONTROLLER"][1] == CONTROLLER_PORT
        assert settings["controller.listener.names"] == "CONTROLLER"
        # Clients reach each node under its own name, which its certificate carries.
        assert listeners(settings["advertised.listeners"]) == {"SASL_SSL": (node, CLIENT_PORT)}
    # None waits for another: no node is healthy before two controllers have elected a leader.
    for node in KAFKA_NODES:
        assert not set(depends_on(services()[node])) & set(KAFKA_NODES), node


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_kafka_keeps_three_replicas_and_acknowledges_a_write_on_two(node: str) -> None:
    settings = kafka_settings(node)
    assert settings["default.replication.factor"] == "3"
    assert settings["min.insync.replicas"] == "2"
    assert settings["offsets.topic.replication.factor"] == "3"
    assert settings["transaction.state.log.replication.factor"] == "3"
    assert settings["transaction.state.log.min.isr"] == "2"
    assert settings.get("unclean.leader.election.enable", "false") == "false"
    assert settings["auto.create.topics.enable"] == "false"
    # One node may be down: a replica count no larger than the cluster, an ISR minimum below it.
    assert int(settings["min.insync.replicas"]) < int(settings["default.replication.factor"])
    assert int(settings["default.replication.factor"]) <= len(KAFKA_NODES)


@pytest.mark.parametrize("name", WORKERS)
def test_workers_create_topics_as_the_cluster_keeps_them(name: str) -> None:
    env, settings = environment(services()[name]), kafka_settings()
    assert env["COVER2_REPLICATION_FACTOR"] == settings["default.replication.factor"] == "3"
    assert env["COVER2_MIN_INSYNC_REPLICAS"] == settings["min.insync.replicas"] == "2"
    # The input topics are the record recovery and partition takeover replay: kept forever.
    assert env["COVER2_INPUT_RETENTION_HOURS"] == "-1"


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_each_kafka_node_has_its_own_volume(node: str) -> None:
    env = environment(services()[node])
    (data,) = [source for source, target, _ in mounts(services()[node])
               if target == env["KAFKA_LOG_DIRS"]]
    assert data == f"{node}-data" and data in config()["volumes"]
    for other, service in services().items():
        if other != node:
            assert data not in {source for source, _, _ in mounts(service)}, other


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_kafka_listens_to_clients_on_sasl_ssl_only(node: str) -> None:
    settings, protocol = kafka_settings(node), protocols(node)
    bound = listeners(settings["listeners"])
    advertised = listeners(settings["advertised.listeners"])
    assert set(protocol) == set(bound), "every listener has its security protocol"
    controllers = set(settings["controller.listener.names"].split(","))
    assert controllers == {"CONTROLLER"}
    # Clients (and the brokers among themselves) reach only SASL_SSL listeners.
    assert advertised and all(protocol[name] == "SASL_SSL" for name in advertised), advertised
    assert advertised == {"SASL_SSL": (node, CLIENT_PORT)}
    assert protocol[settings["inter.broker.listener.name"]] == "SASL_SSL"
    # The controller listener must be reached by the other nodes, so it is on the network:
    # TLS with a client certificate of the stack's CA, never PLAINTEXT, never advertised.
    assert "PLAINTEXT" not in protocol.values() and "SASL_PLAINTEXT" not in protocol.values()
    for name, (_, port) in bound.items():
        if protocol[name] != "SASL_SSL":
            assert name in controllers and protocol[name] == "SSL", name
            assert settings[f"listener.name.{name.lower()}.ssl.client.auth"] == "required"
            assert name not in advertised
            assert port not in {port for _, port in advertised.values()}
    assert settings["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert settings["sasl.mechanism.inter.broker.protocol"] == "SCRAM-SHA-512"
    # TLS from PEM files the compose file mounts: the node's own key and chain; the names
    # are verified.
    mounted = set(secrets_of(services()[node]).values())
    assert settings["ssl.keystore.type"] == "PEM"
    assert settings["ssl.keystore.location"] == f"{SECRETS}/{node}.keystore.pem" in mounted
    assert "ssl.keystore.password" not in settings, "a PEM keystore takes no store password"
    assert settings["ssl.truststore.type"] == "PEM"
    assert settings["ssl.truststore.location"] == f"{SECRETS}/ca.crt" in mounted
    assert settings.get("ssl.endpoint.identification.algorithm", "https") == "https"
    for name in bound:  # no listener turns the verification of names off
        assert settings.get(f"listener.name.{name.lower()}.ssl.endpoint.identification"
                            ".algorithm", "https") == "https"


def certificate_subject(path: Path) -> str:
    """The subject of the certificate in a PEM keystore (key, certificate, CA), RFC 2253."""
    text = path.read_text()
    leaf = text[text.index("-----BEGIN CERTIFICATE-----"):]
    leaf = leaf[:leaf.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")]
    done = subprocess.run(["openssl", "x509", "-noout", "-subject", "-nameopt", "RFC2253"],
                          input=leaf, capture_output=True, text=True, check=True)
    return done.stdout.strip().removeprefix("subject=").strip()


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_kafka_authorizes_every_request_by_acl(node: str, dev_secrets: Path) -> None:
    settings, env = kafka_settings(node), environment(services()[node])
    assert settings["authorizer.class.name"] == (
        "org.apache.kafka.metadata.authorizer.StandardAuthorizer")
    assert settings["allow.everyone.if.no.acl.found"] == "false"
    # The admin; and the three nodes as their certificates name them on the controller
    # listener (mutual TLS). Not User:ANONYMOUS: with the controller listener on the network,
    # that would make anyone who connects to it a super user.
    principals = {f"User:CN={certificate_subject(dev_secrets / f'{name}.keystore.pem')[3:]}"
                  for name in KAFKA_NODES}
    assert principals == {f"User:CN={name}" for name in KAFKA_NODES}
    assert set(settings["super.users"].split(";")) == {f"User:{ADMIN}", *principals}
    assert "User:ANONYMOUS" not in settings["super.users"]
    assert env["SCRAM_ADMIN_USER"] == ADMIN
    # The broker logs in as the admin; its password is read from the mounted file.
    module, user, password = jaas_login(
        settings["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"])
    assert module == "org.apache.kafka.common.security.scram.ScramLoginModule"
    assert user == ADMIN
    assert password == "${dir:/run/secrets:kafka_admin_password}"
    assert settings["config.providers"] == "dir"
    assert settings["config.providers.dir.class"] == (
        "org.apache.kafka.common.config.provider.DirectoryConfigProvider")
    assert settings["config.providers.dir.param.allowed.paths"] == SECRETS
    assert "kafka_admin_password" in secrets_of(services()[node])
    # So does every admin client (the healthchecks, kafka-init).
    admin = properties(KAFKA_DEPLOY / "admin.properties")
    assert admin["security.protocol"] == "SASL_SSL"
    assert admin["sasl.mechanism"] == "SCRAM-SHA-512"
    assert jaas_login(admin["sasl.jaas.config"])[1:] == (ADMIN, password)
    assert admin["ssl.truststore.location"] == f"{SECRETS}/ca.crt"
    assert admin["config.providers.dir.param.allowed.paths"] == SECRETS


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_kafka_health_is_each_nodes_own(node: str) -> None:
    probe = services()[node]["healthcheck"]["test"]
    assert probe[:2] == ["CMD", "/opt/kafka/bin/kafka-broker-api-versions.sh"]
    # A node is healthy when it answers, as the admin over verified TLS, not when another does.
    assert probe[probe.index("--bootstrap-server") + 1] == f"{node}:{CLIENT_PORT}"
    assert probe[probe.index("--command-config") + 1] == "/opt/cover2/kafka/admin.properties"


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_kafka_starts_with_its_admin_created_at_format_time(node: str, tmp_path: Path,
                                                            dev_secrets: Path) -> None:
    kafka = services()[node]
    assert command(kafka) == ["bash", "/opt/cover2/kafka/start.sh"]
    assert (str(KAFKA_DEPLOY), "/opt/cover2/kafka", True) in mounts(kafka)
    # server.properties goes to a tmpfs, which is not /tmp: docker mounts a tmpfs noexec, and
    # the JVM loads native code (compression codecs) from /tmp.
    assert (kafka.get("tmpfs") or []) == ["/run/kafka"]
    assert "config_dir=${CONFIG_DIR:-/run/kafka}" in (KAFKA_DEPLOY / "start.sh").read_text()
    env = {key: unescaped(value) for key, value in environment(kafka).items()}
    done, log = run_with_stubs(
        KAFKA_DEPLOY / "start.sh", tmp_path,
        {**env, "KAFKA_HEAP_OPTS": "-Xmx1G", "CONFIG_DIR": str(tmp_path / "config"),
         "SECRETS_DIR": str(dev_secrets)},
        ("kafka-storage.sh", "kafka-server-start.sh"))
    assert done.returncode == 0, done.stderr
    password = (dev_secrets / "kafka_admin_password").read_text()
    config = str(tmp_path / "config" / "server.properties")
    # Every node formats its own storage: the one cluster id, the same admin and password.
    (format_call,) = calls(log, "kafka-storage.sh")
    assert format_call[:6] == ["format", "--ignore-formatted", "--cluster-id", env["CLUSTER_ID"],
                               "--config", config]
    (arguments,) = format_call[6:]
    assert arguments.startswith("@"), "the SCRAM argument comes from a file"
    assert [line for line in log if line.startswith(("FILE ", "MODE "))] == [
        "FILE --add-scram",
        f"FILE SCRAM-SHA-512=[name={ADMIN},iterations=8192,password={password}]",
        "MODE 600"]
    assert not Path(arguments[1:]).exists(), "the file with the password is removed"
    assert calls(log, "kafka-server-start.sh") == [[config]]
    # The broker's properties are those the tests above read, and hold no secret.
    rendered = dict(line.removeprefix("CONFIG ").split("=", 1)
                    for line in log if line.startswith("CONFIG "))
    assert rendered == kafka_settings(node)
    assert rendered["node.id"] == env["KAFKA_NODE_ID"]
    assert "heap.opts" not in rendered
    assert all(password not in line for line in log if line.startswith(("CALL", "CONFIG")))


def test_kafka_refuses_to_start_without_the_admin_password(tmp_path: Path) -> None:
    env = {key: unescaped(value)
           for key, value in environment(services()[KAFKA_NODES[0]]).items()}
    done, log = run_with_stubs(
        KAFKA_DEPLOY / "start.sh", tmp_path,
        {**env, "CONFIG_DIR": str(tmp_path / "config"), "SECRETS_DIR": str(tmp_path)},
        ("kafka-storage.sh", "kafka-server-start.sh"))
    assert done.returncode != 0 and "kafka_admin_password" in done.stderr
    assert "dev-secrets.sh" in done.stderr
    assert not log, "nothing is formatted or started"


def test_kafka_refuses_to_start_without_its_node_id(tmp_path: Path, dev_secrets: Path) -> None:
    env = {key: unescaped(value)
           for key, value in environment(services()[KAFKA_NODES[0]]).items()}
    env.pop("KAFKA_NODE_ID")
    done, log = run_with_stubs(
        KAFKA_DEPLOY / "start.sh", tmp_path,
        {**env, "CONFIG_DIR": str(tmp_path / "config"), "SECRETS_DIR": str(dev_secrets)},
        ("kafka-storage.sh", "kafka-server-start.sh"))
    assert done.returncode != 0 and "KAFKA_NODE_ID" in done.stderr
    assert not log, "nothing is formatted or started"


def test_acl_table_grants_exactly_what_each_service_needs() -> None:
    assert acl_table() == EXPECTED_ACLS
    principals = {principal for principal, *_ in acl_table()}
    assert principals == {f"User:{user}" for user in KAFKA_CLIENTS.values()}


def test_kafka_init_creates_the_users_and_applies_every_acl(tmp_path: Path,
                                                           dev_secrets: Path) -> None:
    init = services()["kafka-init"]
    assert all(init["image"] == services()[node]["image"] for node in KAFKA_NODES)
    assert command(init) == ["bash", "/opt/cover2/kafka/init.sh"]
    assert (str(KAFKA_DEPLOY), "/opt/cover2/kafka", True) in mounts(init)
    assert str(init.get("restart", "no")) == "no" and not init.get("ports")
    env = environment(init)
    assert env["BOOTSTRAP_SERVER"] == BOOTSTRAP
    # It waits for every node: users and ACLs go to a whole cluster.
    assert {node: depends_on(init).get(node) for node in KAFKA_NODES} == dict.fromkeys(
        KAFKA_NODES, "service_healthy")
    assert env["TMPDIR"] in (init.get("tmpfs") or []), "password files go to a tmpfs"
    env.pop("TMPDIR")
    # Each client's user and password file are those kafka-init sets.
    users = dict(entry.split(":") for entry in env["SCRAM_USERS"].split())
    for name, user in KAFKA_CLIENTS.items():
        password_file = environment(services()[name])["COVER2_KAFKA_PASSWORD_FILE"]
        assert password_file == f"{SECRETS}/{users[user]}", name
        assert users[user] in secrets_of(init)
    done, log = run_with_stubs(KAFKA_DEPLOY / "init.sh", tmp_path,
                               {**env, "SECRETS_DIR": str(dev_secrets)},
                               ("kafka-configs.sh", "kafka-acls.sh"))
    assert done.returncode == 0, done.stderr
    # As the admin (admin.properties beside the script: /opt/cover2/kafka in the container).
    admin = ["--bootstrap-server", BOOTSTRAP,
             "--command-config", str(KAFKA_DEPLOY / "admin.properties")]
    # The SCRAM credential of each user, its password in a file only.
    configured = calls(log, "kafka-configs.sh")
    assert [call[:9] for call in configured] == [
        [*admin, "--alter", "--entity-type", "users", "--entity-name", user]
        for user in users]
    assert [line for line in log if line.startswith(("FILE ", "MODE "))] == [
        line for file in users.values() for line in (
            f"FILE SCRAM-SHA-512=iterations=8192,password={(dev_secrets / file).read_text()}",
            "MODE 600")]
    assert all(call[9:10] == ["--add-config-file"] and len(call) == 11 for call in configured)
    for file in users.values():
        assert all((dev_secrets / file).read_text() not in line
                   for line in log if line.startswith("CALL"))
    # Every grant of the table, nothing more, then the list for the log.
    *grants, listing = calls(log, "kafka-acls.sh")
    assert listing == [*admin, "--list"]
    applied: set[tuple[str, str, str, str, str]] = set()
    for call in grants:
        assert call[:4] == admin and call[4] == "--add", call
        options: dict[str, list[str]] = {}
        for flag_, value in zip(call[5::2], call[6::2], strict=True):
            options.setdefault(flag_, []).append(value)
        assert set(options) <= {"--allow-principal", "--resource-pattern-type", "--operation",
                                "--topic", "--group"}, call
        (principal,), (pattern,) = options["--allow-principal"], options["--resource-pattern-type"]
        for resource in ("topic", "group"):
            applied |= {(principal, operation, resource, pattern, name)
                        for operation in options["--operation"]
                        for name in options.get(f"--{resource}", [])}
    assert applied == EXPECTED_ACLS


def test_two_workers_in_one_group_with_their_own_names_and_state() -> None:
    workers = {name: service for name, service in services().items()
               if command(service)[:1] == ["worker"]}
    assert sorted(workers) == list(WORKERS)
    ids, groups, states = set(), set(), set()
    for name, worker in workers.items():
        assert worker["image"] == "cover2:latest" and worker.get("build"), name
        assert flag(worker, "--broker") == BROKER, name
        assert flag(worker, "--web-port") in (None, "6066"), name
        env = environment(worker)
        ids.add(env["COVER2_WORKER_ID"])
        groups.add(env["COVER2_GROUP_ID"])  # one group: they share the partitions
        assert env.get("COVER2_STATE_DIR", STATE_DIR) == STATE_DIR, name
        state = [source for source, target, _ in mounts(worker) if target == STATE_DIR]
        assert state and state[0] in config()["volumes"], f"{name}: state on a named volume"
        states.add(state[0])
        # The production consumer timeouts of `cover2 worker`, not the embedded broker's.
        for setting in ("session_timeout", "heartbeat_interval"):
            assert f"COVER2_{setting.upper()}" not in env, name
            assert flag(worker, "--" + setting.replace("_", "-")) is None, name
        # The worker exits non-zero on a fatal error; docker restarts it.
        assert worker["restart"] == "unless-stopped", name
        assert not published(worker), f"{name}: Grafana is the way in, not a worker's port"
    assert len(ids) == len(states) == 2
    assert len(groups) == 1


@pytest.mark.parametrize("name", sorted(KAFKA_CLIENTS))
def test_kafka_clients_use_sasl_ssl_with_a_password_file(name: str) -> None:
    service = services()[name]
    env, mounted = environment(service), secrets_of(service)
    assert env["COVER2_KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["COVER2_KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert env["COVER2_KAFKA_USERNAME"] == KAFKA_CLIENTS[name]
    assert "COVER2_KAFKA_PASSWORD" not in env, "a password is never a value"
    assert env["COVER2_KAFKA_PASSWORD_FILE"] in mounted.values()
    assert env["COVER2_KAFKA_CA_FILE"] == f"{SECRETS}/ca.crt" in mounted.values()
    assert flag(service, "--broker") == BROKER
    needs = depends_on(service)
    assert needs["kafka-init"] == "service_completed_successfully", "users and ACLs first"


@pytest.mark.parametrize("name", [*sorted(KAFKA_CLIENTS), "kafka-init"])
def test_every_kafka_client_bootstraps_from_the_three_nodes(name: str) -> None:
    service = services()[name]
    if name == "kafka-init":
        servers = environment(service)["BOOTSTRAP_SERVER"].split(",")
    else:
        urls = (flag(service, "--broker") or "").split(",")
        assert all(url.startswith("kafka://") for url in urls), urls
        servers = [url.removeprefix("kafka://") for url in urls]
    # Exactly the address each node advertises: any one that answers is enough to start.
    advertised = []
    for node in KAFKA_NODES:
        host, port = listeners(kafka_settings(node)["advertised.listeners"])["SASL_SSL"]
        advertised.append(f"{host}:{port}")
    assert servers == advertised == BOOTSTRAP.split(",")
    # ... and none starts before all three are healthy.
    needs = depends_on(service)
    assert all(needs.get(node) == "service_healthy" for node in KAFKA_NODES), needs


@pytest.mark.parametrize("name", WORKERS)
def test_workers_serve_https_with_basic_auth(name: str, dev_secrets: Path) -> None:
    worker = services()[name]
    web_config = environment(worker)["COVER2_WEB_CONFIG_FILE"]
    mounted = secrets_of(worker)
    assert web_config == f"{SECRETS}/web-config.yml" in mounted.values()
    # The web config names its certificate and key relative to itself: they must be mounted
    # in the same folder.
    document = yaml.safe_load((dev_secrets / "web-config.yml").read_text())
    folder = Path(web_config).parent
    for key in ("cert_file", "key_file"):
        assert str(folder / document["tls_server_config"][key]) in mounted.values(), key
    assert set(document["basic_auth_users"]) == {"prometheus"}


def test_every_service_has_a_healthcheck() -> None:
    for name, service in services().items():
        if name in ONE_SHOT:
            continue  # it exits; what follows waits for its exit code
        check = service.get("healthcheck") or {}
        assert check.get("test") and str(check.get("disable")).lower() != "true", name
        assert check["test"][0] in ("CMD", "CMD-SHELL") and check["test"] != ["NONE"], name
    for name in WORKERS:
        assert any("/healthz" in part for part in services()[name]["healthcheck"]["test"])


@pytest.mark.parametrize("name", WORKERS)
def test_worker_liveness_is_healthz_over_verified_https(name: str) -> None:
    probe = services()[name]["healthcheck"]["test"]
    assert probe[:3] == ["CMD", "python", "-c"]
    assert "'https://localhost:6066/healthz'" in probe[3]
    assert "cafile='/run/secrets/ca.crt'" in probe[3]
    assert "_create_unverified_context" not in probe[3]
    compile(probe[3], "<healthcheck>", "exec")


def test_one_shot_services_are_waited_for_until_they_succeed() -> None:
    for name in ONE_SHOT:
        assert str(services()[name].get("restart", "no")) == "no", name
        waiting = {other: depends_on(service).get(name) for other, service in services().items()
                   if name in depends_on(service)}
        assert set(waiting) >= {*WORKERS, "feed"}, name
        assert set(waiting.values()) == {"service_completed_successfully"}, name


def test_services_wait_for_their_dependencies_to_be_healthy() -> None:
    expected = {
        "kafka-init": {*KAFKA_NODES},
        "worker-1": {*KAFKA_NODES, "kafka-init"}, "worker-2": {*KAFKA_NODES, "kafka-init"},
        "feed": {*KAFKA_NODES, "kafka-init", "worker-1"},
        "prometheus": {"worker-1", "worker-2", "alertmanager"}, "grafana": {"prometheus"},
    }
    for name, service in services().items():
        needs = depends_on(service)
        assert set(needs) >= expected.get(name, set()), name
        for dependency, condition in needs.items():
            assert condition in HEALTHY, f"{name} -> {dependency}: {condition}"
            if dependency in ONE_SHOT:
                assert condition == "service_completed_successfully", (name, dependency)


def test_grafana_admin_password_comes_from_a_secret_file() -> None:
    grafana = services()["grafana"]
    env = environment(grafana)
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == f"/run/secrets/{SECRET}"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    sources = [s if isinstance(s, str) else s["source"] for s in grafana.get("secrets") or []]
    assert SECRET in sources
    assert Path(config()["secrets"][SECRET]["file"]) == ROOT / "secrets" / SECRET
    ignored = (ROOT / "secrets" / ".gitignore").read_text().split()
    assert ignored == ["*", "!.gitignore"], "the password file is never committed"
    assert "secrets" in (ROOT / ".dockerignore").read_text().split(), "nor built into an image"


def test_no_environment_variable_holds_a_literal_secret() -> None:
    sensitive = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|CREDENTIALS", re.IGNORECASE)
    for name, service in services().items():
        for key, value in environment(service).items():
            if sensitive.search(key):
                assert key.endswith("_FILE") and value.startswith("/run/secrets/"), (
                    f"{name}: {key} holds a literal value")


def test_no_password_is_a_value_of_a_variable_or_a_flag(dev_secrets: Path) -> None:
    # A password is named only by its file: ${dir:/run/secrets:FILE} for Kafka.
    inline = re.compile(r"password\s*[=:]\s*\"?([^\"\s;,]*)", re.IGNORECASE)
    generated = [path.read_text() for path in dev_secrets.glob("*_password")]
    # The developer's own secrets, when there are any, must not have leaked either.
    generated += [path.read_text() for path in (ROOT / "secrets").glob("*_password")]
    for name, service in services().items():
        values = [*environment(service).values(), *command(service),
                  *(service.get("healthcheck") or {}).get("test", [])]
        for value in map(unescaped, values):
            for reference in inline.findall(value):
                assert reference.startswith("${dir:/run/secrets:"), (name, value)
            assert not any(secret and secret in value for secret in generated), name


def test_every_secret_is_a_file_dev_secrets_writes(dev_secrets: Path) -> None:
    declared = config()["secrets"]
    for name, spec in declared.items():
        assert Path(spec["file"]) == ROOT / "secrets" / name, name
        assert not spec.get("external"), name
    written = {path.name for path in dev_secrets.iterdir()}
    assert set(declared) == written - {"ca.key"}
    assert DEV_SECRETS.stat().st_mode & 0o111, "deploy/dev-secrets.sh is executable"


def test_each_service_reads_only_its_own_secrets() -> None:
    mounted = {name: secrets_of(service) for name, service in services().items()}
    assert {name: set(files) for name, files in mounted.items()} == SERVICE_SECRETS
    for name, files in mounted.items():
        # Where the web configs and the tools expect them, and nowhere a user could write.
        assert all(target == f"{SECRETS}/{source}" for source, target in files.items()), name
    assert not any("ca.key" in files for files in mounted.values()), "the CA key stays out"


def test_secret_files_are_never_committed() -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    names = [f"secrets/{name}" for name in config()["secrets"]] + ["secrets/ca.key"]
    ignored = subprocess.run(["git", "check-ignore", "--no-index", *names], cwd=ROOT,
                             capture_output=True, text=True, check=False).stdout.split()
    assert sorted(ignored) == sorted(names)
    kept = subprocess.run(["git", "check-ignore", "--no-index", "secrets/.gitignore"], cwd=ROOT,
                          capture_output=True, text=True, check=False)
    assert kept.returncode == 1, "secrets/ itself stays in git with its .gitignore"


def test_the_feed_runs_only_in_the_demo_profile() -> None:
    feed = services()["feed"]
    assert feed["profiles"] == ["demo"]
    assert command(feed)[0] == "simulate" and flag(feed, "--broker") == BROKER
    assert float(flag(feed, "--rate") or 0) > 0
    others = {name for name, service in services().items() if service.get("profiles")}
    assert others == {"feed"}
    probe = feed["healthcheck"]["test"]
    # Healthy while a node of its bootstrap list answers TLS with a certificate of the CA.
    assert "('kafka-1', 'kafka-2', 'kafka-3')" in probe[3] and ", 9093)" in probe[3]
    assert "cafile='/run/secrets/ca.crt'" in probe[3] and "server_hostname=node" in probe[3]
    compile(probe[3], "<healthcheck>", "exec")


def test_images_are_pinned() -> None:
    for name, service in services().items():
        image = service["image"]
        if service.get("build"):
            assert image == "cover2:latest", name  # built here from the Dockerfile
            assert Path(service["build"]["context"]) == ROOT, name
            continue
        repository, _, tag = image.rpartition(":")
        assert repository and "/" not in tag and tag not in ("", "latest"), f"{name}: {image}"


def test_only_grafana_is_published_on_the_host() -> None:
    ports = {host: (name, container) for name, service in services().items()
             for host, container in published(service).items()}
    assert ports == {"3000": ("grafana", "3000")}
    for name, service in services().items():
        assert service.get("network_mode") != "host", f"{name} would publish every port"


def test_no_published_port_reaches_kafka_or_an_unauthenticated_service() -> None:
    for node in KAFKA_NODES:
        kafka_ports = {port for _, port in listeners(kafka_settings(node)["listeners"]).values()}
        assert kafka_ports == {CLIENT_PORT, CONTROLLER_PORT}
    for name in (*KAFKA_NODES, "kafka-init"):
        assert not published(services()[name]), name
        assert services()[name].get("network_mode") != "host", name
    # Grafana, the one published service, speaks HTTPS only and asks everyone to log in.
    grafana = environment(services()["grafana"])
    assert grafana["GF_SERVER_PROTOCOL"] == "https"
    mounted = secrets_of(services()["grafana"]).values()
    assert grafana["GF_SERVER_CERT_FILE"] in mounted
    assert grafana["GF_SERVER_CERT_KEY"] in mounted
    assert grafana.get("GF_AUTH_ANONYMOUS_ENABLED", "false") == "false"
    assert grafana.get("GF_AUTH_DISABLE_LOGIN_FORM", "false") == "false"
    assert grafana["GF_SECURITY_COOKIE_SECURE"] == "true"
    probe = services()["grafana"]["healthcheck"]["test"]
    assert "https://localhost:3000/api/health" in probe and "/run/secrets/ca.crt" in probe


def test_prometheus_scrapes_the_workers_over_https_with_basic_auth(dev_secrets: Path) -> None:
    document = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    mounted = secrets_of(services()["prometheus"]).values()
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    cover2 = jobs["cover2"]
    assert cover2["scheme"] == "https"
    assert cover2["tls_config"] == {"ca_file": f"{SECRETS}/ca.crt"}
    assert cover2["basic_auth"] == {"username": "prometheus",
                                    "password_file": f"{SECRETS}/prometheus_scrape_password"}
    targets = [target for group in cover2["static_configs"] for target in group["targets"]]
    assert targets == [f"{name}:6066" for name in WORKERS]
    # Every client configuration: HTTPS, the CA, a user whose password is a mounted file.
    clients = [*document["scrape_configs"], *document["alerting"]["alertmanagers"]]
    for client in clients:
        assert client["scheme"] == "https", client
        assert client["tls_config"]["ca_file"] in mounted
        assert not client["tls_config"].get("insecure_skip_verify")
        assert "password" not in client["basic_auth"]
        assert client["basic_auth"]["password_file"] in mounted
    # ... which the servers' web configs know.
    servers = {"cover2": "web-config.yml", "prometheus": "prometheus-web.yml"}
    for job, web_config in servers.items():
        users = yaml.safe_load((dev_secrets / web_config).read_text())["basic_auth_users"]
        assert jobs[job]["basic_auth"]["username"] in users, job
    users = yaml.safe_load((dev_secrets / "alertmanager-web.yml").read_text())["basic_auth_users"]
    assert document["alerting"]["alertmanagers"][0]["basic_auth"]["username"] in users


@pytest.mark.parametrize("name", ["prometheus", "alertmanager"])
def test_prometheus_and_alertmanager_ask_for_tls_and_basic_auth(name: str,
                                                                dev_secrets: Path) -> None:
    service = services()[name]
    web_config = flag(service, "--web.config.file")
    mounted = secrets_of(service)
    assert web_config == f"{SECRETS}/{name}-web.yml" in mounted.values()
    document = yaml.safe_load((dev_secrets / f"{name}-web.yml").read_text())
    for key in ("cert_file", "key_file"):
        assert f"{SECRETS}/{document['tls_server_config'][key]}" in mounted.values()
    # The healthcheck authenticates with a mounted password file, over verified TLS.
    client = DEPLOY / name / "healthcheck.yml"
    assert (str(client), "/etc/cover2/healthcheck.yml", True) in mounts(service)
    http = yaml.safe_load(client.read_text())
    assert http["basic_auth"]["username"] in document["basic_auth_users"]
    assert http["basic_auth"]["password_file"] in mounted.values()
    assert http["tls_config"] == {"ca_file": f"{SECRETS}/ca.crt"}
    probe = service["healthcheck"]["test"]
    assert "--http.config.file=/etc/cover2/healthcheck.yml" in probe
    assert any(part.startswith("https://localhost:") or "=https://localhost:" in part
               for part in probe), probe


def test_alertmanager_runs_without_its_unauthenticated_cluster_port() -> None:
    assert flag(services()["alertmanager"], "--cluster.listen-address") == ""


def test_grafana_authenticates_to_prometheus(dev_secrets: Path) -> None:
    (source,) = yaml.safe_load(DATASOURCE.read_text())["datasources"]
    mounted = secrets_of(services()["grafana"]).values()
    assert source["url"] == "https://prometheus:9090"
    assert source["basicAuth"] is True
    users = yaml.safe_load((dev_secrets / "prometheus-web.yml").read_text())["basic_auth_users"]
    assert source["basicAuthUser"] == "grafana" in users
    assert source["jsonData"]["tlsAuthWithCACert"] is True
    assert not source["jsonData"].get("tlsSkipVerify")
    secure = source["secureJsonData"]
    assert secure == {
        "basicAuthPassword": f"$__file{{{SECRETS}/grafana_datasource_password}}",
        "tlsCACert": f"$__file{{{SECRETS}/ca.crt}}"}
    for value in secure.values():
        assert value.removeprefix("$__file{").removesuffix("}") in mounted
    assert "password" not in source and "basicAuthPassword" not in source


def test_monitoring_configuration_is_mounted_read_only() -> None:
    prometheus, alertmanager, grafana = (
        services()[name] for name in ("prometheus", "alertmanager", "grafana"))
    assert (str(ROOT / "prometheus"), "/etc/prometheus", True) in mounts(prometheus)
    assert flag(prometheus, "--config.file") == "/etc/prometheus/prometheus.yml"
    assert flag(prometheus, "--storage.tsdb.path") == "/prometheus"
    assert "--web.enable-lifecycle" in command(prometheus)
    assert any(target == "/prometheus" and source in config()["volumes"]
               for source, target, _ in mounts(prometheus))
    assert (str(ROOT / "prometheus" / "alertmanager.yml"), "/etc/alertmanager/alertmanager.yml",
            True) in mounts(alertmanager)
    assert flag(alertmanager, "--config.file") == "/etc/alertmanager/alertmanager.yml"
    assert (str(ROOT / "grafana" / "provisioning"), "/etc/grafana/provisioning",
            True) in mounts(grafana)
    assert (str(ROOT / "grafana" / "dashboards"), "/var/lib/grafana/dashboards",
            True) in mounts(grafana)
    for name, service in services().items():
        for source, target, read_only in mounts(service):
            if source.startswith(str(ROOT)):
                assert read_only, f"{name}: {source} -> {target} is writable"


# --- the Dockerfile ----------------------------------------------------------------------------

def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, pending = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        keyword, _, arguments = text.partition(" ")
        out.append((keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends in a continuation line"
    return out


def arguments(keyword: str) -> list[str]:
    return [args for key, args in instructions() if key == keyword]


def test_dockerfile_base_user_and_entrypoint() -> None:
    known = {"FROM", "ENV", "RUN", "COPY", "USER", "WORKDIR", "VOLUME", "EXPOSE", "HEALTHCHECK",
             "ENTRYPOINT", "CMD", "ARG", "LABEL", "STOPSIGNAL"}
    assert {key for key, _ in instructions()} <= known
    assert arguments("FROM") == ["python:3.11-slim-bookworm"]
    users = arguments("USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert arguments("EXPOSE") == ["6066"]
    assert [json.loads(args) for args in arguments("ENTRYPOINT")] == [["cover2"]]
    assert [json.loads(args) for args in arguments("CMD")] == [["worker"]]
    env = " ".join(arguments("ENV"))
    assert "COVER2_WEB_HOST=0.0.0.0" in env, "reachable by Prometheus from other containers"
    assert f"COVER2_STATE_DIR={STATE_DIR}" in env


def test_dockerfile_healthcheck_asks_healthz_with_python() -> None:
    (check,) = arguments("HEALTHCHECK")
    options, _, cmd = check.partition("CMD ")
    assert all(option.startswith("--") for option in options.split())
    probe = json.loads(cmd)
    assert probe[:2] == ["python", "-c"] and "urllib.request" in probe[2]
    assert "/healthz" in probe[2] and "localhost" in probe[2]
    compile(probe[2], "<healthcheck>", "exec")


def test_dockerfile_installs_the_project_without_dev_dependencies() -> None:
    runs = " ".join(arguments("RUN"))
    assert "pip install" in runs and "[dev]" not in runs and "-e " not in runs
    ignored = set((ROOT / ".dockerignore").read_text().split())
    copied = [part for args in arguments("COPY") for part in args.split()[:-1]
              if not part.startswith("--")]
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["readme"]
    assert {"pyproject.toml", readme, "risk", "streams"} <= set(copied)
    for source in copied:
        assert (ROOT / source).exists(), source
        assert source not in ignored, f"{source} is copied but excluded by .dockerignore"

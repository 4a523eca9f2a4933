"""deploy/dev-secrets.sh, run for real: what it writes, with which permissions, and that the
servers' own tools accept it (openssl, promtool check web-config, a TLS handshake)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
import yaml

from tests.ops.conftest import DEV_SECRETS, run_dev_secrets

CERTIFICATES = {
    "worker": ["worker-1", "worker-2", "localhost"],
    "prometheus": ["prometheus", "localhost"],
    "alertmanager": ["alertmanager", "localhost"],
    "grafana": ["grafana", "localhost"],
}
PASSWORDS = ["kafka_admin_password", "kafka_worker_password", "kafka_feed_password",
             "prometheus_scrape_password", "grafana_datasource_password",
             "alertmanager_healthcheck_password", "grafana_admin_password"]
# Web config -> (certificate, {user: the password file whose hash it holds}).
WEB_CONFIGS = {
    "web-config.yml": ("worker", {"prometheus": "prometheus_scrape_password"}),
    "prometheus-web.yml": ("prometheus", {"prometheus": "prometheus_scrape_password",
                                          "grafana": "grafana_datasource_password"}),
    "alertmanager-web.yml": ("alertmanager", {
        "prometheus": "prometheus_scrape_password",
        "healthcheck": "alertmanager_healthcheck_password"}),
}
# Each Kafka node's own key and chain, under its own name.
KAFKA_NODES = ("kafka-1", "kafka-2", "kafka-3")
KEYSTORES = {f"{node}.keystore.pem" for node in KAFKA_NODES}
FILES = ({"ca.crt", "ca.key", *KEYSTORES, *PASSWORDS, *WEB_CONFIGS}
         | {f"{name}.{kind}" for name in CERTIFICATES for kind in ("crt", "key")})


def openssl(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["openssl", *args], input=stdin, capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0, f"openssl {' '.join(args)}:\n{done.stderr}"
    return done.stdout


def names_in(certificate: Path | str) -> list[str]:
    """The DNS names of a certificate's subjectAltName, in order."""
    text = certificate.read_text() if isinstance(certificate, Path) else certificate
    out = openssl("x509", "-noout", "-ext", "subjectAltName", stdin=text)
    return re.findall(r"DNS:([^,\s]+)", out)


def pem_blocks(path: Path) -> list[tuple[str, str]]:
    """(label, block) of each PEM block of a file, in order."""
    text = path.read_text()
    return [(label, block) for block, label in re.findall(
        r"(-----BEGIN ([A-Z ]+)-----.*?-----END \2-----)", text, re.DOTALL)]


def public_key(pem: str) -> str:
    """The public key of a private key or a certificate, in PEM."""
    if "CERTIFICATE" in pem:
        return openssl("x509", "-noout", "-pubkey", stdin=pem)
    return openssl("pkey", "-pubout", stdin=pem)


def verifies(password: str, hashed: str) -> bool:
    """bcrypt's verdict, by the bcrypt package or else glibc's crypt (Python <= 3.12)."""
    with contextlib.suppress(ImportError):
        import bcrypt

        return bool(bcrypt.checkpw(password.encode(), hashed.encode()))
    with contextlib.suppress(ImportError), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt

        return bool(crypt.crypt(password, hashed) == hashed)
    pytest.fail("no bcrypt implementation here: install the bcrypt package")


def digests(directory: Path) -> dict[str, str]:
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in directory.iterdir()}


def test_the_script_is_valid_bash_with_strict_mode() -> None:
    subprocess.run(["bash", "-n", str(DEV_SECRETS)], check=True)
    text = DEV_SECRETS.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "\nset -euo pipefail\n" in text


def test_it_writes_every_file_with_safe_permissions(dev_secrets: Path) -> None:
    assert {path.name for path in dev_secrets.iterdir()} == FILES
    assert dev_secrets.stat().st_mode & 0o777 == 0o700, "only the owner enters the folder"
    assert (dev_secrets / "ca.key").stat().st_mode & 0o777 == 0o600
    for name in FILES - {"ca.key"}:
        # Bind-mounted as they are: each image's own user must be able to read them.
        assert (dev_secrets / name).stat().st_mode & 0o777 == 0o644, name


def test_passwords_are_random_hex_without_a_newline(dev_secrets: Path) -> None:
    values = [(dev_secrets / name).read_text() for name in PASSWORDS]
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in values)
    assert len(set(values)) == len(values)


@pytest.mark.parametrize("name", sorted(CERTIFICATES))
def test_server_certificates_chain_to_the_ca_with_their_names(name: str,
                                                              dev_secrets: Path) -> None:
    certificate, key = dev_secrets / f"{name}.crt", dev_secrets / f"{name}.key"
    assert "OK" in openssl("verify", "-CAfile", str(dev_secrets / "ca.crt"), str(certificate))
    assert names_in(certificate) == CERTIFICATES[name]
    purposes = openssl("x509", "-noout", "-ext", "extendedKeyUsage,basicConstraints",
                       "-in", str(certificate))
    assert "TLS Web Server Authentication" in purposes and "CA:FALSE" in purposes
    assert public_key(key.read_text()) == public_key(certificate.read_text())
    assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----"), "unencrypted PKCS#8"


@pytest.mark.parametrize("node", KAFKA_NODES)
def test_each_kafka_node_has_its_own_keystore_as_kafka_reads_it(node: str,
                                                               dev_secrets: Path) -> None:
    blocks = pem_blocks(dev_secrets / f"{node}.keystore.pem")
    # ssl.keystore.type=PEM without ssl.key.password: an unencrypted PKCS#8 key, then the chain.
    assert [label for label, _ in blocks] == ["PRIVATE KEY", "CERTIFICATE", "CERTIFICATE"]
    (_, key), (_, leaf), (_, ca) = blocks
    assert ca.strip() == (dev_secrets / "ca.crt").read_text().strip()
    # The name clients and the other nodes verify, and the principal of its controller
    # connections (User:CN=kafka-N, a super user in docker-compose.yml).
    assert names_in(leaf) == [node, "localhost"]
    assert openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253",
                   stdin=leaf).strip() == f"subject=CN={node}"
    # Its client certificate on the other nodes' controller listener (mutual TLS) too.
    purposes = openssl("x509", "-noout", "-ext", "extendedKeyUsage", stdin=leaf)
    assert "TLS Web Server Authentication" in purposes
    assert "TLS Web Client Authentication" in purposes
    assert public_key(key) == public_key(leaf)
    chain = dev_secrets.parent / f"{node}.crt"
    chain.write_text(leaf + "\n")
    assert "OK" in openssl("verify", "-CAfile", str(dev_secrets / "ca.crt"), str(chain))


def test_every_kafka_node_has_a_key_of_its_own(dev_secrets: Path) -> None:
    keys = {pem_blocks(dev_secrets / name)[0][1] for name in KEYSTORES}
    assert len(keys) == len(KAFKA_NODES)


def test_the_ca_is_a_ca(dev_secrets: Path) -> None:
    text = openssl("x509", "-noout", "-ext", "basicConstraints,keyUsage",
                   "-in", str(dev_secrets / "ca.crt"))
    assert "CA:TRUE" in text and "Certificate Sign" in text


@pytest.mark.parametrize("host", CERTIFICATES["worker"])
def test_a_client_with_the_ca_trusts_the_worker_under_each_name(host: str,
                                                                dev_secrets: Path) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(dev_secrets / "worker.crt", dev_secrets / "worker.key")
    client = ssl.create_default_context(cafile=str(dev_secrets / "ca.crt"))
    left, right = socket.socketpair()
    with left, right:
        def serve() -> None:
            with contextlib.suppress(ssl.SSLError, OSError):
                server.wrap_socket(right, server_side=True).do_handshake()

        thread = threading.Thread(target=serve)
        thread.start()
        try:
            with client.wrap_socket(left, server_hostname=host) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
        finally:
            thread.join(timeout=10)


@pytest.mark.parametrize("name", sorted(WEB_CONFIGS))
def test_web_configs_hash_their_users_passwords(name: str, dev_secrets: Path) -> None:
    certificate, users = WEB_CONFIGS[name]
    document = yaml.safe_load((dev_secrets / name).read_text())
    assert document["tls_server_config"] == {"cert_file": f"{certificate}.crt",
                                             "key_file": f"{certificate}.key"}
    assert set(document["basic_auth_users"]) == set(users)
    for user, password_file in users.items():
        hashed = document["basic_auth_users"][user]
        assert re.fullmatch(r"\$2[aby]\$10\$[./A-Za-z0-9]{53}", hashed), user
        assert verifies((dev_secrets / password_file).read_text(), hashed), user
        assert not verifies("not the password", hashed)


def check_web_configs(directory: Path) -> None:
    """exporter-toolkit's own check: the bcrypt hashes, and the certificate and key loaded
    relative to the file, as Prometheus and Alertmanager load them."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: install Debian's prometheus package"
    done = subprocess.run([promtool, "check", "web-config", *sorted(WEB_CONFIGS)],
                          cwd=directory, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr  # promtool reports on stderr
    assert done.returncode == 0, output
    assert output.count("SUCCESS") == len(WEB_CONFIGS), output


def test_prometheus_tools_accept_the_web_configs(dev_secrets: Path) -> None:
    check_web_configs(dev_secrets)


@pytest.mark.parametrize("hasher", ["bcrypt", "htpasswd", "crypt", "mkpasswd"])
def test_each_bcrypt_hasher_makes_hashes_the_servers_accept(hasher: str, tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    done = subprocess.run(["bash", str(DEV_SECRETS), "--dir", str(directory), "--hasher", hasher],
                          capture_output=True, text=True, check=False,
                          env={"PATH": os.environ["PATH"], "PYTHON": sys.executable})
    if done.returncode == 2 and "does not work here" in done.stderr:
        pytest.skip(f"{hasher} is not installed here")
    assert done.returncode == 0, done.stderr
    assert f"bcrypt hashes by {hasher} " in done.stdout
    check_web_configs(directory)
    document = yaml.safe_load((directory / "web-config.yml").read_text())
    assert verifies((directory / "prometheus_scrape_password").read_text(),
                    document["basic_auth_users"]["prometheus"])


def test_the_worker_accepts_its_web_config(dev_secrets: Path) -> None:
    pytest.importorskip("bcrypt", reason="the worker's web security needs the bcrypt package")
    from streams.web_security import load_web_config

    config = load_web_config(dev_secrets / "web-config.yml")
    assert config.tls is not None and [user for user, _ in config.users] == ["prometheus"]


def test_it_keeps_what_exists_and_rewrites_only_what_depends_on_a_new_file(
        tmp_path: Path, dev_secrets: Path) -> None:
    directory = tmp_path / "secrets"
    shutil.copytree(dev_secrets, directory)
    before = digests(directory)
    out = run_dev_secrets(directory)
    assert "wrote" not in out and digests(directory) == before
    # A password gone: it, and the web configs that hash it, are written again; nothing else.
    (directory / "grafana_datasource_password").unlink()
    out = run_dev_secrets(directory)
    after = digests(directory)
    assert {name for name in after if after[name] != before[name]} == {
        "grafana_datasource_password", "prometheus-web.yml"}
    assert set(re.findall(r"wrote \S+/(\S+)", out)) == {"grafana_datasource_password",
                                                       "prometheus-web.yml"}
    # The CA gone: every certificate is signed again; passwords and web configs stay.
    (directory / "ca.key").unlink()
    run_dev_secrets(directory)
    renewed = digests(directory)
    assert {name for name in renewed if renewed[name] != after[name]} == {
        "ca.crt", "ca.key", *KEYSTORES,
        *(f"{name}.{kind}" for name in CERTIFICATES for kind in ("crt", "key"))}


def test_a_lost_kafka_keystore_is_written_again_alone(tmp_path: Path, dev_secrets: Path) -> None:
    directory = tmp_path / "secrets"
    shutil.copytree(dev_secrets, directory)
    before = digests(directory)
    (directory / "kafka-2.keystore.pem").unlink()
    out = run_dev_secrets(directory)
    after = digests(directory)
    assert {name for name in after if after[name] != before[name]} == {"kafka-2.keystore.pem"}
    assert set(re.findall(r"wrote \S+/(\S+)", out)) == {"kafka-2.keystore.pem"}


def test_force_writes_everything_again(tmp_path: Path, dev_secrets: Path) -> None:
    directory = tmp_path / "secrets"
    shutil.copytree(dev_secrets, directory)
    before = digests(directory)
    run_dev_secrets(directory, "--force")
    after = digests(directory)
    assert set(after) == FILES
    assert all(after[name] != before[name] for name in FILES)


def test_grafana_may_be_named_as_users_reach_it(tmp_path: Path) -> None:
    directory = tmp_path / "secrets"
    run_dev_secrets(directory, "--grafana-san", "DNS:risk.ccp.example",
                    "--grafana-san=IP:10.0.0.7")
    assert names_in(directory / "grafana.crt") == ["grafana", "localhost", "risk.ccp.example"]
    assert "IP Address:10.0.0.7" in openssl("x509", "-noout", "-ext", "subjectAltName",
                                            "-in", str(directory / "grafana.crt"))
    done = subprocess.run(["bash", str(DEV_SECRETS), "--dir", str(directory), "--grafana-san",
                           "risk.ccp.example"], capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "DNS:name or IP:address" in done.stderr

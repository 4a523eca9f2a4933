"""The web config file (exporter-toolkit's format), and TLS and basic auth on a real aiohttp
server on loopback, with certificates made by the `openssl` command line."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import shutil
import ssl
import subprocess
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
from aiohttp import web

from streams import cli
from streams import web_security as ws
from streams.web_security import WebConfig, WebConfigError, load_web_config

PASSWORD = "correct horse battery staple"
BOB_PASSWORD = "bob's own"
# The lowest costs: every test check pays bcrypt's work factor. Two costs, to see that an
# unknown user is checked at the highest.
ALICE_HASH = "$2y$" + bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode()[4:]
BOB_HASH = bcrypt.hashpw(BOB_PASSWORD.encode(), bcrypt.gensalt(5, prefix=b"2a")).decode()
USERS = f"basic_auth_users:\n  alice: {ALICE_HASH}\n  bob: '{BOB_HASH}'\n"
TLS = "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"
CHALLENGE = 'Basic realm="cover2"'
PATHS = ("/healthz", "/readyz", "/metrics", "/cover2", "/groups/{group}")
# How long a test waits for something that happens at once; never slept.
WAIT_S = 10.0


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def make_certificate(directory: Path, name: str, subject: str, san: str) -> None:
    """A self-signed P-256 certificate and its unencrypted key, ``name``.crt and .key."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(directory / f"{name}.key"),
         "-out", str(directory / f"{name}.crt"), "-days", "2", "-subj", f"/CN={subject}",
         "-addext", f"subjectAltName={san}"],
        check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert shutil.which("openssl"), "the openssl command line is needed"
    directory = tmp_path_factory.mktemp("pki")
    make_certificate(directory, "server", "127.0.0.1", "IP:127.0.0.1,DNS:localhost")
    make_certificate(directory, "client", "prometheus", "DNS:prometheus")
    (directory / "garbage.crt").write_text("not a certificate\n")
    return directory


@pytest.fixture
def etc(tmp_path: Path, pki: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with the certificates, keys and soon a web config file; the current
    directory is elsewhere, so relative paths must be read from the file's directory."""
    directory = tmp_path / "etc"
    shutil.copytree(pki, directory)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return directory


def write(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def client_context(pki: Path, certificate: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=pki / "server.crt")
    if certificate:
        context.load_cert_chain(pki / f"{certificate}.crt", pki / f"{certificate}.key")
    return context


# -- the file --------------------------------------------------------------------------------


def test_a_good_file_with_paths_relative_to_its_directory(etc: Path) -> None:
    path = write(etc, TLS + "  client_ca_file: client.crt\n"
                 "  client_auth_type: RequireAndVerifyClientCert\n  min_version: TLS13\n"
                 + USERS)
    config = load_web_config(str(path))
    assert config.tls is not None
    assert config.tls.cert_file == etc / "server.crt" and config.tls.key_file == etc / "server.key"
    assert config.tls.client_ca_file == etc / "client.crt"
    assert (config.tls.client_auth_type, config.tls.min_version, config.tls.max_version) == (
        "RequireAndVerifyClientCert", "TLS13", "TLS13")
    assert config.users == (("alice", ALICE_HASH), ("bob", BOB_HASH))
    context = ws.server_ssl_context(config)
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_3
    for shown in (repr(config), config.describe()):
        assert ALICE_HASH not in shown and BOB_HASH not in shown


def test_defaults_are_exporter_toolkits(etc: Path) -> None:
    config = load_web_config(write(etc, TLS))
    assert config.tls == ws.TlsConfig(etc / "server.crt", etc / "server.key")
    assert config.users == ()
    context = ws.server_ssl_context(config)
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ws.basic_auth_middleware(config, ws.OPEN_PATHS) is None
    assert ws.server_ssl_context(None) is None and ws.basic_auth_middleware(None) is None


def test_absolute_paths_stay_absolute(etc: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    path = write(other, f"tls_server_config:\n  cert_file: {etc / 'server.crt'}\n"
                 f"  key_file: {etc / 'server.key'}\n")
    tls = load_web_config(path).tls
    assert tls is not None and tls.cert_file == etc / "server.crt"


MALFORMED = {
    "bad YAML": ("tls_server_config:\n  cert_file: [\n", "not valid YAML at line 3"),
    "a tab": ("basic_auth_users:\n\talice: x\n", "not valid YAML at line 2, column 1"),
    "empty": ("", "is empty: give tls_server_config, basic_auth_users or both"),
    "an empty mapping": ("{}\n", "is empty: give tls_server_config, basic_auth_users or both"),
    "a list": ("- tls_server_config\n", "expected a mapping of tls_server_config and "
               "basic_auth_users, found a list"),
    "unknown key": (TLS + "tls_server_confg: {}\n", "unknown key 'tls_server_confg' (the file "
                    "takes tls_server_config, basic_auth_users)"),
    "unknown TLS key": (TLS + "  ca_file: client.crt\n",
                        "unknown key 'tls_server_config.ca_file'"),
    "an exporter-toolkit key cover2 lacks": (
        TLS + "rate_limit:\n  interval: 1s\n  burst: 5\n", "rate_limit is not supported"),
    "an inline certificate": ("tls_server_config:\n  cert: |\n    ---\n  key_file: server.key\n",
                              "tls_server_config.cert is not supported by cover2 (give "
                              "cert_file)"),
    "an empty TLS section": ("tls_server_config:\n", "tls_server_config is empty: it needs "
                             "cert_file and key_file"),
    "no cert_file": ("tls_server_config:\n  key_file: server.key\n",
                     "tls_server_config.cert_file is missing"),
    "no key_file": ("tls_server_config:\n  cert_file: server.crt\n",
                    "tls_server_config.key_file is missing"),
    "a number as a file": ("tls_server_config:\n  cert_file: 12\n  key_file: server.key\n",
                           "tls_server_config.cert_file: expected a string, found a number"),
    "a missing cert file": ("tls_server_config:\n  cert_file: nowhere.crt\n  key_file: "
                            "server.key\n", "tls_server_config.cert_file: {etc}/nowhere.crt: "
                            "no such file"),
    "a missing key file": ("tls_server_config:\n  cert_file: server.crt\n  key_file: "
                           "nowhere.key\n", "tls_server_config.key_file: {etc}/nowhere.key: "
                           "no such file"),
    "a certificate that is not PEM": (
        "tls_server_config:\n  cert_file: garbage.crt\n  key_file: server.key\n",
        "tls_server_config.cert_file {etc}/garbage.crt: no PEM certificate in it"),
    "a key that is not PEM": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.crt\n",
        "tls_server_config.key_file {etc}/server.crt: no PEM private key in it"),
    "another certificate's key": (
        "tls_server_config:\n  cert_file: server.crt\n  key_file: client.key\n",
        "tls_server_config: cannot use cert_file {etc}/server.crt with key_file "
        "{etc}/client.key"),
    "a client CA nobody is asked for": (TLS + "  client_ca_file: client.crt\n",
                                        "client_ca_file is given but client_auth_type is "
                                        "NoClientCert"),
    "client certificates without a CA": (TLS + "  client_auth_type: VerifyClientCertIfGiven\n",
                                         "client_auth_type VerifyClientCertIfGiven needs "
                                         "client_ca_file"),
    "a client CA file that is not PEM": (
        TLS + "  client_ca_file: garbage.crt\n  client_auth_type: RequireAndVerifyClientCert\n",
        "tls_server_config.client_ca_file {etc}/garbage.crt:"),
    "an unknown client auth type": (TLS + "  client_auth_type: Sometimes\n",
                                    "client_auth_type: unknown value 'Sometimes' (choose "
                                    "NoClientCert, VerifyClientCertIfGiven, "
                                    "RequireAndVerifyClientCert)"),
    "an unverified client certificate": (TLS + "  client_auth_type: RequireAnyClientCert\n",
                                         "client_auth_type RequireAnyClientCert is not "
                                         "supported by cover2"),
    "TLS 1.1": (TLS + "  min_version: TLS11\n", "min_version TLS11 is not supported by cover2 "
                "(choose TLS12, TLS13)"),
    "min above max": (TLS + "  min_version: TLS13\n  max_version: TLS12\n",
                      "min_version TLS13 is above max_version TLS12"),
    "a password instead of a hash": ("basic_auth_users:\n  alice: hunter2\n",
                                     "basic_auth_users.alice: not a bcrypt hash ($2a$, $2b$ "
                                     "or $2y$"),
    "an MD5 hash": ("basic_auth_users:\n  alice: $apr1$rOioh4Wh$bVD3DRwksETubcpEH90ww0\n",
                    "basic_auth_users.alice: not a bcrypt hash"),
    "a truncated bcrypt hash": (f"basic_auth_users:\n  alice: {ALICE_HASH[:-1]}\n",
                                "basic_auth_users.alice: not a bcrypt hash"),
    "a bcrypt cost beyond 31": (f"basic_auth_users:\n  alice: $2y$32{ALICE_HASH[6:]}\n",
                                "basic_auth_users.alice: not a bcrypt hash"),
    "no users": (TLS + "basic_auth_users:\n", "basic_auth_users is empty: give at least one "
                 "user, or remove the key"),
    "an empty mapping of users": ("basic_auth_users: {}\n", "basic_auth_users is empty"),
    "a list of users": ("basic_auth_users:\n  - alice\n", "basic_auth_users: expected a "
                        "mapping of users to bcrypt hashes, found a list"),
    "a user twice": (f"basic_auth_users:\n  alice: {ALICE_HASH}\n  alice: {ALICE_HASH}\n",
                     "not valid YAML at line 3, column 3: duplicate key 'alice'"),
    "a colon in a name": (f"basic_auth_users:\n  'alice:{ALICE_HASH}': {ALICE_HASH}\n",
                          "basic_auth_users: a user name contains ':'"),
    "a number as a name": (f"basic_auth_users:\n  123: {ALICE_HASH}\n", "user name 123 is not "
                           "a non-empty string (quote it)"),
}


@pytest.mark.parametrize(("text", "problem"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_file_is_one_line_naming_the_file_and_the_problem(
        etc: Path, text: str, problem: str) -> None:
    path = write(etc, text)
    with pytest.raises(WebConfigError) as raised:
        load_web_config(path)
    message = str(raised.value)
    assert message.startswith(f"web config file {path}: "), message
    assert problem.format(etc=etc) in message
    assert "\n" not in message
    for secret in (ALICE_HASH, ALICE_HASH[:-1], "hunter2", "$apr1$"):
        assert secret not in message
    assert isinstance(raised.value, ValueError)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_a_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yml"
    with pytest.raises(WebConfigError, match=r"^web config file .*nowhere\.yml: no such file$"):
        load_web_config(path)


def test_an_encrypted_key_is_refused_without_a_prompt(etc: Path) -> None:
    subprocess.run(["openssl", "ec", "-in", str(etc / "server.key"), "-aes256", "-passout",
                    "pass:secret", "-out", str(etc / "encrypted.key")],
                   check=True, capture_output=True)
    path = write(etc, "tls_server_config:\n  cert_file: server.crt\n  key_file: encrypted.key\n")
    with pytest.raises(WebConfigError, match="key_file is encrypted"):
        load_web_config(path)


def test_every_bcrypt_prefix_and_cost_is_taken(etc: Path) -> None:
    for prefix in ("2a", "2b", "2y"):
        for cost in (4, 10, 31):
            hashed = f"${prefix}${cost:02d}{ALICE_HASH[6:]}"
            config = load_web_config(write(etc, f"basic_auth_users:\n  alice: '{hashed}'\n"))
            assert config.users == (("alice", hashed),)


def test_the_worker_command_stops_before_kafka_with_exit_code_2(
        etc: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(etc, "basic_auth_users:\n  alice: hunter2\n")
    # Nothing listens on port 1: the command would wait for Kafka if it went that far.
    with pytest.raises(SystemExit) as raised:
        cli.main(["worker", "--broker", "kafka://127.0.0.1:1", "--web-config-file", str(path)])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert err == (f"cover2 worker: web config file {path}: basic_auth_users.alice: not a "
                   "bcrypt hash ($2a$, $2b$ or $2y$, cost 04 to 31, as `htpasswd -nBC 10 \"\" "
                   "| tr -d ':\\n'` prints)\n")


# -- a real server ---------------------------------------------------------------------------


async def answer(request: web.Request) -> web.Response:
    return web.json_response({"path": request.path})


@contextlib.asynccontextmanager
async def serving(config: WebConfig) -> AsyncIterator[str]:
    """An aiohttp server on loopback with the config's TLS and basic auth: its base URL."""
    middleware = ws.basic_auth_middleware(config, ws.OPEN_PATHS)
    app = web.Application(middlewares=[middleware] if middleware else [])
    for path in PATHS:
        app.router.add_get(path, answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    context = ws.server_ssl_context(config)
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    port = runner.addresses[0][1]
    try:
        yield f"{'https' if context else 'http'}://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def get(url: str, authorization: str | None = None,
              context: ssl.SSLContext | bool = True) -> tuple[int, Any, str | None]:
    """GET ``url``: status, JSON body, WWW-Authenticate."""
    headers = {"Authorization": authorization} if authorization is not None else {}
    timeout = aiohttp.ClientTimeout(total=WAIT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session, session.get(
            url, headers=headers, ssl=context) as response:
        return response.status, await response.json(), response.headers.get("WWW-Authenticate")


@pytest.fixture
def secured(etc: Path) -> WebConfig:
    return load_web_config(write(etc, TLS + USERS))


Calls = list[tuple[bytes, bytes]]


@pytest.fixture
def bcrypt_calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every bcrypt check the middleware makes: (password, hash)."""
    calls: Calls = []
    check = ws._check_password

    def counted(password: bytes, hashed: bytes) -> bool:
        calls.append((password, hashed))
        return check(password, hashed)

    monkeypatch.setattr(ws, "_check_password", counted)
    return calls


async def test_the_right_user_over_https_gets_through(secured: WebConfig, pki: Path) -> None:
    context = client_context(pki)
    async with serving(secured) as base:
        for path in ("/metrics", "/cover2", "/groups/G1"):
            assert await get(base + path, basic("alice", PASSWORD), context) == (
                200, {"path": path}, None)
        assert (await get(base + "/metrics", basic("bob", BOB_PASSWORD), context))[0] == 200


BAD_CREDENTIALS = {
    "none": None,
    "a wrong password": basic("alice", "correct horse"),
    "another user's password": basic("alice", BOB_PASSWORD),
    "an unknown user": basic("mallory", PASSWORD),
    "an empty user": basic("", PASSWORD),
    "not Basic": "Bearer " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
    "bad base64": "Basic !!!not-base64",
    "no colon": "Basic " + base64.b64encode(b"alice").decode(),
    "no token": "Basic",
    "a password too long for bcrypt": basic("alice", PASSWORD + "x" * 72),
}


@pytest.mark.parametrize("authorization", BAD_CREDENTIALS.values(), ids=BAD_CREDENTIALS.keys())
async def test_a_missing_or_bad_credential_gets_401_with_a_challenge(
        secured: WebConfig, pki: Path, authorization: str | None) -> None:
    context = client_context(pki)
    async with serving(secured) as base:
        for path in ("/metrics", "/cover2", "/groups/G1", "/not-a-route"):
            status, body, challenge = await get(base + path, authorization, context)
            assert (status, challenge) == (401, CHALLENGE), path
            assert body == {"error": "unauthorized: valid basic auth credentials required"}


async def test_probes_need_no_credentials(secured: WebConfig, pki: Path) -> None:
    async with serving(secured) as base:
        for path in ("/healthz", "/readyz"):
            assert await get(base + path, None, client_context(pki)) == (200, {"path": path},
                                                                         None)
            assert (await get(base + path, basic("alice", "wrong"), client_context(pki)))[0] \
                == 200
        # Only the probes themselves: no prefix, no look-alike opens anything.
        for path in ("/healthz/", "/healthz/../metrics", "/readyz.json", "/healthzz", "/"):
            assert (await get(base + path, None, client_context(pki)))[0] == 401, path


async def test_plain_http_to_the_https_port_fails(secured: WebConfig, pki: Path) -> None:
    async with serving(secured) as base:
        with pytest.raises(aiohttp.ClientError):
            await get(base.replace("https://", "http://") + "/healthz")
        with pytest.raises(aiohttp.ClientError):  # nor does a server nobody vouches for
            await get(base + "/healthz", None, ssl.create_default_context())
        assert (await get(base + "/healthz", None, client_context(pki)))[0] == 200


async def test_a_required_client_certificate(etc: Path, pki: Path) -> None:
    config = load_web_config(write(etc, TLS + "  client_ca_file: client.crt\n"
                                   "  client_auth_type: RequireAndVerifyClientCert\n"))
    async with serving(config) as base:
        with pytest.raises(aiohttp.ClientError):
            await get(base + "/metrics", None, client_context(pki))
        with pytest.raises(aiohttp.ClientError):  # a certificate the CA file does not hold
            await get(base + "/metrics", None, client_context(pki, "server"))
        assert (await get(base + "/metrics", None, client_context(pki, "client")))[0] == 200


async def test_basic_auth_without_tls_works_and_warns(
        etc: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger=ws.__name__):
        config = load_web_config(write(etc, USERS))
        async with serving(config) as base:
            assert base.startswith("http://")
            assert (await get(base + "/metrics", basic("alice", PASSWORD)))[0] == 200
            assert (await get(base + "/metrics"))[0] == 401
    assert "passwords cross the network in clear" in caplog.text


async def test_an_unknown_user_and_a_wrong_password_each_cost_one_bcrypt_check(
        secured: WebConfig, pki: Path, bcrypt_calls: Calls) -> None:
    context = client_context(pki)

    async def status(authorization: str) -> int:
        return (await get(base + "/metrics", authorization, context))[0]

    async with serving(secured) as base:
        assert await status(basic("mallory", PASSWORD)) == 401
        [(password, hashed)] = bcrypt_calls
        # Checked against a dummy of the highest cost the file uses (bob's 05), that
        # bcrypt takes as a hash and no password matches.
        assert password == PASSWORD.encode() and hashed.startswith(b"$2b$05$")
        assert hashed not in (ALICE_HASH.encode(), BOB_HASH.encode())
        assert bcrypt.checkpw(PASSWORD.encode(), hashed) is False

        bcrypt_calls.clear()
        assert await status(basic("alice", "wrong")) == 401
        assert bcrypt_calls == [(b"wrong", ALICE_HASH.encode())]

        bcrypt_calls.clear()
        assert await status(basic("alice", PASSWORD + "x" * 72)) == 401
        assert bcrypt_calls == [(PASSWORD.encode() + b"x" * (72 - len(PASSWORD)),
                                 ALICE_HASH.encode())]

        bcrypt_calls.clear()
        for malformed in ("Basic !!!", "Bearer x", "Basic " + base64.b64encode(b"x").decode()):
            assert await status(malformed) == 401
        assert bcrypt_calls == []


async def test_a_verified_password_is_cached_and_nothing_else_is(
        secured: WebConfig, pki: Path, bcrypt_calls: Calls) -> None:
    context = client_context(pki)

    async def status(authorization: str) -> int:
        return (await get(base + "/metrics", authorization, context))[0]

    async with serving(secured) as base:
        assert [await status(basic("alice", PASSWORD)) for _ in range(3)] == [200] * 3
        assert len(bcrypt_calls) == 1  # a scrape every 15 s pays bcrypt once
        for _ in range(2):
            assert await status(basic("alice", "wrong")) == 401
        assert len(bcrypt_calls) == 3  # failures are never cached
        assert await status(basic("bob", PASSWORD)) == 401  # alice's password is alice's
        assert await status(basic("bob", BOB_PASSWORD)) == 200
        assert await status(basic("alice", PASSWORD)) == 200
        assert len(bcrypt_calls) == 5


async def test_bcrypt_runs_off_the_event_loop(
        secured: WebConfig, pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entered, release = threading.Event(), threading.Event()
    check = ws._check_password

    def slow(password: bytes, hashed: bytes) -> bool:
        entered.set()
        release.wait(WAIT_S)
        return check(password, hashed)

    monkeypatch.setattr(ws, "_check_password", slow)
    context = client_context(pki)
    async with serving(secured) as base:
        pending = asyncio.create_task(get(base + "/metrics", basic("alice", "wrong"), context))
        try:
            assert await asyncio.get_running_loop().run_in_executor(None, entered.wait, WAIT_S)
            # The loop answers while bcrypt works: Kafka and the probes never wait for it.
            assert (await get(base + "/healthz", None, context))[0] == 200
            assert not pending.done()
        finally:
            release.set()
        assert (await pending)[0] == 401


async def test_no_password_or_hash_is_logged(
        secured: WebConfig, pki: Path, caplog: pytest.LogCaptureFixture) -> None:
    context = client_context(pki)
    with caplog.at_level(logging.DEBUG):
        async with serving(secured) as base:
            for authorization in (basic("alice", PASSWORD), basic("alice", "hunter2"),
                                  basic("hunter2", PASSWORD)):
                await get(base + "/metrics", authorization, context)
        logging.getLogger("test").info("config %r, %s", secured, secured.describe())
    for secret in (PASSWORD, "hunter2", ALICE_HASH, BOB_HASH, ALICE_HASH[7:29]):
        assert secret not in caplog.text


def test_the_open_paths_are_the_probes() -> None:
    assert frozenset({"/healthz", "/readyz"}) == ws.OPEN_PATHS


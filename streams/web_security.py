"""TLS and basic auth for the worker's HTTP server, from an exporter-toolkit web config file.

The file has the format Prometheus's own exporters take (``--web.config.file``)::

    tls_server_config:
      cert_file: server.crt        # relative paths: from the file's directory
      key_file: server.key
      client_ca_file: clients.crt  # with client_auth_type RequireAndVerifyClientCert
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      alice: $2y$10$...            # bcrypt hashes

The whole file is checked at start-up; anything wrong stops the worker with one
line naming the file and the problem (:class:`WebConfigError`). Passwords and
hashes never appear in a message or a log line.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import secrets
import ssl
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import bcrypt
import yaml
from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

log = logging.getLogger(__name__)

REALM = "cover2"
# Probes must answer without credentials: an orchestrator has none to give.
OPEN_PATHS = frozenset({"/healthz", "/readyz"})
CLIENT_AUTH_TYPES = {"NoClientCert": ssl.CERT_NONE,
                     "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                     "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
TLS_VERSIONS = {"TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# exporter-toolkit keys cover2 does not implement: refused by name, never silently ignored,
# so that nobody believes a setting protects them when it does not.
UNSUPPORTED = {
    "http_server_config": "", "rate_limit": "",
    "tls_server_config.cert": " (give cert_file)",
    "tls_server_config.key": " (give key_file)",
    "tls_server_config.client_ca": " (give client_ca_file)",
    "tls_server_config.cipher_suites": " (OpenSSL's defaults apply)",
    "tls_server_config.curve_preferences": " (OpenSSL's defaults apply)",
    "tls_server_config.prefer_server_cipher_suites": "",
    "tls_server_config.client_allowed_sans": "",
}
UNSUPPORTED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
UNSUPPORTED_TLS_VERSIONS = ("TLS10", "TLS11")
TLS_KEYS = ("cert_file", "key_file", "client_ca_file", "client_auth_type", "min_version",
            "max_version")
TOP_KEYS = ("tls_server_config", "basic_auth_users")
# The 22nd salt character carries 2 bits only: bcrypt refuses a salt whose unused bits are set.
BCRYPT_HASH = re.compile(
    r"\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{21}[.Oeu][./A-Za-z0-9]{31}")
# bcrypt reads 72 bytes of a password; the bcrypt package refuses longer ones.
MAX_PASSWORD_BYTES = 72


class WebConfigError(ValueError):
    """The web config file cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class TlsConfig:
    """``tls_server_config``: the server's certificate and what it asks of clients."""

    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str = "TLS12"
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    """A checked web config file: TLS if ``tls``, basic auth if ``users``."""

    path: Path
    tls: TlsConfig | None = None
    # (user, bcrypt hash) pairs; kept out of repr so that logging the config leaks no hash.
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)

    def describe(self) -> str:
        """What the file turns on, for the start-up line (user names only, no hash)."""
        parts = []
        if self.tls is not None:
            clients = ("" if self.tls.client_auth_type == "NoClientCert"
                       else f", client certificates {self.tls.client_auth_type}")
            parts.append(f"TLS {self.tls.min_version}+{clients}")
        if self.users:
            count = len(self.users)
            parts.append(f"basic auth ({count} user{'s' if count > 1 else ''})")
        return f"{' and '.join(parts)} from {self.path}"


class _ProblemError(Exception):
    """A problem in the file, without the file's name."""


class _StrictLoader(yaml.SafeLoader):
    """A safe loader that refuses a key given twice (PyYAML silently keeps the last)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[tuple[str, str]] = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if (key.tag, key.value) in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key.value!r}", key.start_mark)
            seen.add((key.tag, key.value))
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def _fail(problem: str) -> NoReturn:
    raise _ProblemError(problem)


_KINDS = {type(None): "nothing", dict: "a mapping", list: "a list", str: "a string",
          bool: "a boolean", int: "a number", float: "a number"}


def _kind(value: object) -> str:
    return _KINDS.get(type(value), type(value).__name__)


def _parse_yaml(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as error:
        # Only the problem and its place: the snippet YAML would quote may hold a hash.
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        _fail(f"not valid YAML{where}: {error.problem or error.context}")
    except yaml.YAMLError as error:
        _fail(f"not valid YAML: {type(error).__name__}")


def _section(document: Mapping[Any, Any], name: str, known: tuple[str, ...],
             prefix: str = "") -> None:
    for key in document:
        full = f"{prefix}{key}"
        if full in UNSUPPORTED:
            _fail(f"{full} is not supported by cover2{UNSUPPORTED[full]}")
        if key not in known:
            _fail(f"unknown key {full!r} ({name} takes {', '.join(known)})")


def _string(section: Mapping[str, Any], key: str, name: str) -> str | None:
    value = section.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        _fail(f"{name}.{key}: expected a string, found {_kind(value)}")
    return value


def _file(directory: Path, section: Mapping[str, Any], key: str) -> Path | None:
    name = _string(section, key, "tls_server_config")
    if name is None:
        return None
    path = directory / name  # an absolute name stays as it is
    if not path.is_file():
        _fail(f"tls_server_config.{key}: {path}: no such file")
    return path


def _choice(section: Mapping[str, Any], key: str, default: str, choices: tuple[str, ...],
            unsupported: tuple[str, ...]) -> str:
    value = _string(section, key, "tls_server_config") or default
    if value in unsupported:
        _fail(f"tls_server_config.{key} {value} is not supported by cover2 "
              f"(choose {', '.join(choices)})")
    if value not in choices:
        _fail(f"tls_server_config.{key}: unknown value {value!r} (choose {', '.join(choices)})")
    return value


def _tls(section: Any, directory: Path) -> TlsConfig:
    if section is None or section == {}:
        _fail("tls_server_config is empty: it needs cert_file and key_file")
    if not isinstance(section, dict):
        _fail(f"tls_server_config: expected a mapping, found {_kind(section)}")
    _section(section, "tls_server_config", TLS_KEYS, "tls_server_config.")
    cert, key = _file(directory, section, "cert_file"), _file(directory, section, "key_file")
    if cert is None or key is None:
        _fail(f"tls_server_config.{'cert_file' if cert is None else 'key_file'} is missing")
    client_auth = _choice(section, "client_auth_type", "NoClientCert",
                          tuple(CLIENT_AUTH_TYPES), UNSUPPORTED_CLIENT_AUTH)
    client_ca = _file(directory, section, "client_ca_file")
    if client_ca is not None and client_auth == "NoClientCert":
        _fail("tls_server_config.client_ca_file is given but client_auth_type is NoClientCert "
              "(choose RequireAndVerifyClientCert)")
    if client_ca is None and client_auth != "NoClientCert":
        _fail(f"tls_server_config.client_auth_type {client_auth} needs client_ca_file")
    versions = tuple(TLS_VERSIONS)
    low = _choice(section, "min_version", "TLS12", versions, UNSUPPORTED_TLS_VERSIONS)
    high = _choice(section, "max_version", "TLS13", versions, UNSUPPORTED_TLS_VERSIONS)
    if TLS_VERSIONS[low] > TLS_VERSIONS[high]:
        _fail(f"tls_server_config.min_version {low} is above max_version {high}")
    return TlsConfig(cert, key, client_ca, client_auth, low, high)


def _users(section: Any) -> tuple[tuple[str, str], ...]:
    if section is None or section == {}:
        _fail("basic_auth_users is empty: give at least one user, or remove the key")
    if not isinstance(section, dict):
        _fail(f"basic_auth_users: expected a mapping of users to bcrypt hashes, "
              f"found {_kind(section)}")
    users = []
    for user, hashed in section.items():
        if not isinstance(user, str) or not user:
            _fail(f"basic_auth_users: user name {user!r} is not a non-empty string (quote it)")
        if ":" in user:
            # Not the name: it may be an htpasswd line, user:hash, pasted whole.
            _fail("basic_auth_users: a user name contains ':', which basic auth cannot carry "
                  "(write `user: hash`)")
        # Never the value in the message: it is a hash, or a password pasted by mistake.
        if not isinstance(hashed, str) or not BCRYPT_HASH.fullmatch(hashed):
            _fail(f"basic_auth_users.{user}: not a bcrypt hash ($2a$, $2b$ or $2y$, cost 04 "
                  "to 31, as `htpasswd -nBC 10 \"\" | tr -d ':\\n'` prints)")
        users.append((user, hashed))
    return tuple(users)


def _parse(path: Path) -> WebConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        _fail("no such file")
    except IsADirectoryError:
        _fail("is a directory")
    except UnicodeDecodeError:
        _fail("not UTF-8 text")
    except OSError as error:
        _fail(error.strerror or type(error).__name__)
    document = _parse_yaml(text)
    if document is None or document == {}:
        _fail("is empty: give tls_server_config, basic_auth_users or both")
    if not isinstance(document, dict):
        _fail(f"expected a mapping of tls_server_config and basic_auth_users, "
              f"found {_kind(document)}")
    _section(document, "the file", TOP_KEYS)
    config = WebConfig(
        path,
        _tls(document["tls_server_config"], path.parent) if "tls_server_config" in document
        else None,
        _users(document["basic_auth_users"]) if "basic_auth_users" in document else ())
    _ssl_context(config)  # a key that does not match its certificate fails here, not later
    return config


def load_web_config(path: str | Path) -> WebConfig:
    """The checked web config file at ``path``; :class:`WebConfigError` says what is wrong."""
    path = Path(path)
    try:
        return _parse(path)
    except _ProblemError as problem:
        raise WebConfigError(f"web config file {path}: {problem}") from None


def _read(path: Path, key: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        _fail(f"tls_server_config.{key} {path}: {error.strerror or type(error).__name__}")


def _no_passphrase() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal of a server process.
    raise _ProblemError("tls_server_config.key_file is encrypted: cover2 needs an unencrypted "
                        "private key")


def _ssl_context(config: WebConfig) -> ssl.SSLContext | None:
    tls = config.tls
    if tls is None:
        return None
    # OpenSSL's own word for a file that is not PEM is "PEM lib": say it plainly first.
    if b"-----BEGIN CERTIFICATE-----" not in _read(tls.cert_file, "cert_file"):
        _fail(f"tls_server_config.cert_file {tls.cert_file}: no PEM certificate in it")
    if not re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", _read(tls.key_file, "key_file")):
        _fail(f"tls_server_config.key_file {tls.key_file}: no PEM private key in it")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_passphrase)
    except (ssl.SSLError, OSError) as error:
        _fail(f"tls_server_config: cannot use cert_file {tls.cert_file} with key_file "
              f"{tls.key_file}: {_reason(error)}")
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (ssl.SSLError, OSError) as error:
            _fail(f"tls_server_config.client_ca_file {tls.client_ca_file}: {_reason(error)}")
    context.verify_mode = CLIENT_AUTH_TYPES[tls.client_auth_type]
    return context


def _reason(error: ssl.SSLError | OSError) -> str:
    reason = getattr(error, "reason", None) or error.strerror or str(error)
    return str(reason).replace("\n", " ")


def server_ssl_context(config: WebConfig | None) -> ssl.SSLContext | None:
    """The server's TLS context, or None for plain HTTP (no config, or no tls_server_config)."""
    if config is None:
        return None
    try:
        return _ssl_context(config)
    except _ProblemError as problem:
        raise WebConfigError(f"web config file {config.path}: {problem}") from None


def _check_password(password: bytes, hashed: bytes) -> bool:
    """bcrypt's verdict: the one slow step of every check that misses the cache."""
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:
        return False


def _verify(password: bytes, hashed: bytes) -> bool:
    # A password too long for bcrypt still costs one full bcrypt, then fails.
    matches = _check_password(password[:MAX_PASSWORD_BYTES], hashed)
    return matches and len(password) <= MAX_PASSWORD_BYTES


def _credentials(headers: list[str]) -> tuple[bytes, bytes] | None:
    if len(headers) != 1:
        return None
    scheme, _, token = headers[0].strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def _digest(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


class _Users:
    """Checks credentials against the users, in a time that does not depend on which user
    or how much of a name or digest matched."""

    def __init__(self, users: tuple[tuple[str, str], ...]) -> None:
        self._names = [_digest(user.encode()) for user, _ in users]
        self._hashes = [hashed.encode() for _, hashed in users]
        # An unknown user is checked against a hash of the highest cost the file uses: it
        # takes as long as a known user's wrong password. Any well-formed salt will do.
        cost = max(int(hashed[4:6]) for hashed in self._hashes)
        self._dummy = f"$2b${cost:02d}${'.' * 53}".encode()
        # One verified credential per user, so that a scrape every 15 s pays bcrypt once.
        # Kept as an HMAC under a random key that never leaves the process: the cache holds
        # no password, and no unkeyed fast hash of one to try guesses against.
        self._key = secrets.token_bytes(32)
        self._verified = [bytes(32) for _ in users]
        # bcrypt releases the GIL; one thread at a time keeps a flood of wrong passwords
        # from taking every core, and the event loop (Kafka, /healthz) never waits for it.
        self._bcrypt = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cover2-bcrypt")

    def _cached(self, token: bytes) -> bool:
        hit = False
        for verified in self._verified:
            hit |= hmac.compare_digest(verified, token)
        return hit

    def _find(self, user: bytes) -> int:
        wanted, found = _digest(user), -1
        for index, name in enumerate(self._names):
            if hmac.compare_digest(name, wanted):
                found = index
        return found

    async def check(self, headers: list[str]) -> bool:
        """Whether the Authorization header(s) carry a known user and its password."""
        credentials = _credentials(headers)
        if credentials is None:
            return False
        user, password = credentials
        token = hmac.new(self._key, len(user).to_bytes(4, "big") + user + password,
                         hashlib.sha256).digest()
        if self._cached(token):
            return True
        index = self._find(user)
        hashed = self._hashes[index] if index >= 0 else self._dummy
        loop = asyncio.get_running_loop()
        if await loop.run_in_executor(self._bcrypt, _verify, password, hashed) and index >= 0:
            self._verified[index] = token
            return True
        return False


def _unauthorized() -> web.Response:
    # The same answer for every failure: nothing tells an unknown user from a wrong password.
    return web.json_response({"error": "unauthorized: valid basic auth credentials required"},
                             status=401,
                             headers={hdrs.WWW_AUTHENTICATE: f'Basic realm="{REALM}"'})


def basic_auth_middleware(config: WebConfig | None,
                          open_paths: frozenset[str] = OPEN_PATHS) -> Middleware | None:
    """An aiohttp middleware that answers 401 unless a configured user's credentials come
    with the request, except on ``open_paths``; None when the config has no users."""
    if config is None or not config.users:
        return None
    if config.tls is None:
        log.warning("%s: basic_auth_users without tls_server_config: passwords cross the "
                    "network in clear", config.path)
    users = _Users(config.users)

    @web.middleware
    async def basic_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in open_paths or await users.check(
                request.headers.getall(hdrs.AUTHORIZATION, [])):
            return await handler(request)
        return _unauthorized()

    return basic_auth

"""The HTTP endpoints as plain functions: (status, JSON document) from the monitor's results.

:func:`streams.app.create_app` routes faust's web views to them; tests call them directly.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from risk.ccp import MemberRows
from risk.desk import StressDesk, UnknownGroupError, what_if_now
from risk.results import Results
from risk.reverse import ReverseStress
from streams.documents import cover2_document, group_document, what_if_document
from streams.readiness import Readiness

Response = tuple[int, dict[str, Any]]


def port_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port``: checked before a server starts."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def healthz(healthy: bool, worker: str) -> Response:
    """Liveness: 200 once the worker has joined its group and restored its state."""
    return (200 if healthy else 503), {"status": "ok" if healthy else "starting",
                                       "worker": worker}


def readyz(readiness: Readiness, worker: str) -> Response:
    """Readiness: 200 while the results are current, else 503 with the reason."""
    if readiness.ready:
        return 200, {"ready": True, "worker": worker, "fetch_age_s": readiness.fetch_age_s}
    return 503, {"ready": False, "worker": worker, "reason": readiness.reason,
                 "fetch_age_s": readiness.fetch_age_s}


def cover2(results: Results | None, currency: str, counts: dict[str, int],
           partitions: dict[str, list[int]], readiness: Readiness,
           desk: Callable[[], StressDesk], reverse: ReverseStress | None) -> Response:
    """``GET /cover2``: the latest results with how fresh they are, or 503 before there
    are any."""
    if results is None:
        return 503, {"error": "no results yet: the worker is starting"}
    return 200, cover2_document(results, currency, counts, partitions, readiness, desk(),
                                reverse)


def what_if(results: Results | None, groups: Sequence[str], currency: str) -> Response:
    """``GET /what-if?default=G1&default=G2``: the named groups default now, on the live
    state, which nothing changes; 400 for an unknown group or none named."""
    if results is None:
        return 503, {"error": "no results yet: the worker is starting"}
    if not groups:
        return 400, {"error": "name the defaulting groups: /what-if?default=G1&default=G2"}
    try:
        return 200, what_if_document(what_if_now(results, groups), currency)
    except UnknownGroupError as error:
        return 400, {"error": f"no group {error.group!r}", "groups": list(results.groups)}


def index(endpoints: dict[str, str]) -> Response:
    """``GET /``: the endpoints and what each is for."""
    return 200, {"endpoints": endpoints}


def groups(results: Results | None) -> Response:
    """``GET /groups``: the member groups' ids (none before the first results)."""
    return 200, {"groups": list(results.groups if results is not None else ())}


def group(results: Results | None, member_rows: Callable[[str], MemberRows], name: str,
          currency: str) -> Response:
    """``GET /groups/{group}``: the group's figures, or 404 with the groups there are."""
    if results is None or name not in results.groups:
        return 404, {"error": f"no group {name!r}",
                     "groups": list(results.groups if results else ())}
    return 200, group_document(results, member_rows(name), name, currency)

"""Log lines no request can forge: the JSON access log, and escaping in the app's log.

The access log is written by :class:`AccessLog`, a small ASGI middleware around the app,
as one JSON line per request on stdout (hypercorn's own access log is off in
``hypercorn.toml``). JSON escapes every control character, so a path such as
``/x%0a[...] INFO in audit: {...}`` stays inside its line's ``"path"`` string instead of
starting a line of its own. Each line has:

``time``, ``pid``, ``request_id``, ``addr``, ``user_id``, ``method``, ``path``, ``query``,
``status``, ``bytes``, ``duration_ms`` and ``agent``.

``request_id`` is the request's ``X-Request-ID`` when a trusted proxy sent it
(``TRUSTED_PROXY_HOPS`` of 1 or more), exactly once, in the shape Heroku's router
documents and passes on: 20 to 200 of ``A-Z a-z 0-9 + / = -``, which a UUID and a
router's 32 hex digits both are. Otherwise it is a new random one: without a trusted
proxy the header is whatever the client typed, and a client choosing ids could make its
requests' lines look like another's. Either way the response carries it back as
``X-Request-ID``. ``addr`` is
the client address the app sees, after ``TRUSTED_PROXY_HOPS``' proxy fix. ``user_id`` is
the logged-in user's id, or null. The path (percent-decoded, as the app routes it) and
the query string (as sent) are cut at 1024 characters and the User-Agent at 256, so no
request can make a line much longer than a few KiB. A path that carries a secret (a
link sent by mail) is written with the secret replaced: a feature registers the
pattern with :func:`redact_paths`.

The app's own log (the audit log, errors) goes through :class:`SafeFormatter`, which
escapes control characters in a message and indents a traceback's lines, so that no
line of the app's log that a request can influence can pass for another entry.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
from collections.abc import Iterable
from json.encoder import encode_basestring_ascii as json_string
from typing import Any, cast

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    ASGISendEvent,
    HTTPScope,
    Scope,
)
from quart import Quart, g, request
from quart.logging import default_handler

from .. import settings

REQUEST_ID_HEADER = b"x-request-id"
# Heroku's documented shape (devcenter.heroku.com/articles/http-request-id).
VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9+/=-]{20,200}")
# The per-request record the app fills in (the user id), carried in the ASGI scope.
SCOPE_KEY = "quartapp.access"
# The app's list of (pattern, replacement) applied to a path before it is logged.
REDACTIONS = "quartapp.web.logs.redactions"
MAX_PATH = 1024
MAX_AGENT = 256

# Control characters (C0 but tab, DEL, C1) and the Unicode line and paragraph
# separators, which some log viewers break lines at.
_CONTROLS = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0)) if code != 9}
_CONTROLS.update({0x2028: "\\u2028", 0x2029: "\\u2029"})
TRACEBACK_INDENT = "    "
# Quart's own format for app.logger's lines (quart.logging.default_handler).
QUART_LOG_FORMAT = "[%(asctime)s] %(levelname)s in %(module)s: %(message)s"


class AccessLog:
    """ASGI middleware: write one JSON line per HTTP request, and echo its request id.

    The line is written after the app returns, whatever it did: a page, an error page,
    a 500 after an exception the app let out (logged as 500, the status hypercorn sends).
    ``trust_request_id``: take a well-formed ``X-Request-ID`` (only behind a trusted proxy).
    """

    def __init__(
        self,
        app: ASGIFramework,
        *,
        trust_request_id: bool = False,
        redactions: list[tuple[re.Pattern[str], str]] | None = None,
    ) -> None:
        self.app = app
        self.trust_request_id = trust_request_id
        # Shared with the app's extensions: features add to it after this is made.
        self.redactions = redactions if redactions is not None else []
        self._second = -1
        self._stamp = ""

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = client_request_id(scope["headers"]) if self.trust_request_id else None
        request_id = given or new_request_id()
        echo = (REQUEST_ID_HEADER, request_id.encode())
        entry: dict[str, Any] = {"user_id": None}
        status = 0
        sent = 0

        async def send_logged(message: ASGISendEvent) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message["headers"], echo]}
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            # An HTTP scope with one extra key, which ASGI allows.
            await self.app(cast(Scope, {**scope, SCOPE_KEY: entry}), receive, send_logged)
        finally:
            self.write(scope, request_id, entry, status or 500, sent, started)

    def write(
        self,
        scope: HTTPScope,
        request_id: str,
        entry: dict[str, Any],
        status: int,
        sent: int,
        started: float,
    ) -> None:
        """Write the request's line; a broken stdout costs the line, not the request."""
        now = time.time()
        second = int(now)
        if second != self._second:  # one strftime per second, not per line
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        client = scope.get("client")
        user_id = entry["user_id"]
        agent = _header(scope["headers"], b"user-agent")
        path = scope["path"]
        for pattern, replacement in self.redactions:
            path = pattern.sub(replacement, path)
        path = path[:MAX_PATH]
        # Built by hand with json's own string encoder (ASCII-only output): two to three
        # times cheaper than json.dumps of a dict, and the same text.
        line = (
            f'{{"time": "{self._stamp}", "pid": {os.getpid()}, '
            f'"request_id": "{request_id}", '
            f'"addr": {json_string(client[0]) if client else "null"}, '
            f'"user_id": {"null" if user_id is None else int(user_id)}, '
            f'"method": {json_string(scope["method"])}, '
            f'"path": {json_string(path)}, '
            f'"query": {json_string(scope["query_string"][:MAX_PATH].decode("latin-1"))}, '
            f'"status": {status}, "bytes": {sent}, '
            f'"duration_ms": {(time.perf_counter() - started) * 1000:.2f}, '
            f'"agent": {"null" if agent is None else json_string(agent[:MAX_AGENT])}}}\n'
        )
        try:
            stream = sys.stdout
            stream.write(line)
            stream.flush()
        except (OSError, ValueError):
            pass


def client_request_id(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The request's ``X-Request-ID`` if there is exactly one and it looks like an id."""
    found = None
    for name, value in headers:
        if name.lower() == REQUEST_ID_HEADER:
            if found is not None:
                return None
            found = value
    if found is None or not VALID_REQUEST_ID.fullmatch(found):
        return None
    return found.decode("ascii")


def new_request_id() -> str:
    """A fresh random request id: 32 hex digits, like a UUID without its dashes.

    An id only has to be unique, not unguessable, so it comes from ``random`` (seeded
    from the OS in each worker): a tenth of the cost of ``os.urandom``.
    """
    return f"{random.getrandbits(128):032x}"


def _header(headers: Iterable[tuple[bytes, bytes]], wanted: bytes) -> str | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value.decode("latin-1")
    return None


async def note_user(_: BaseException | None) -> None:
    """Teardown hook: put the logged-in user's id in the request's access log line."""
    entry = cast("dict[str, Any] | None", request.scope.get(SCOPE_KEY))
    user = g.get("user")
    if entry is not None and user is not None:
        entry["user_id"] = user.id


def escape_controls(text: str) -> str:
    """``text`` with control characters and line separators written as escapes."""
    return text if text.isprintable() else text.translate(_CONTROLS)


class SafeFormatter(logging.Formatter):
    """A formatter under which a logged value cannot start a new log line.

    The message's control characters are escaped (so ``%s`` of a path with a newline
    stays on its line), and each line of a traceback is indented, so that the text of
    an exception, which may quote input, never starts a line as an entry does.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:
        return _indent(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indent(super().formatStack(stack_info))


def _indent(text: str) -> str:
    return "\n".join(TRACEBACK_INDENT + escape_controls(line) for line in text.split("\n"))


def init_app(app: Quart) -> None:
    """Escape the app's log lines and, with ``ACCESS_LOG`` on, write the access log.

    Call it before ``security.init_app``: the proxy fix and the host guard then wrap
    the access log, so it logs the client address the app sees, and every request,
    refused hosts included.
    """
    if not isinstance(default_handler.formatter, SafeFormatter):
        # The handler Quart gives app.logger (public, as Flask's is); same format.
        default_handler.setFormatter(SafeFormatter(QUART_LOG_FORMAT))
    config = settings.of(app)
    if config.access_log:
        app.teardown_request(note_user)
        # Quart's documented way to add ASGI middleware; mypy forbids assigning to a method.
        app.asgi_app = AccessLog(  # type: ignore[method-assign]
            app.asgi_app,
            trust_request_id=config.trusted_proxy_hops >= 1,
            redactions=app.extensions.setdefault(REDACTIONS, []),
        )


def redact_paths(app: Quart, pattern: str, replacement: str) -> None:
    """Log paths matching ``pattern`` with it replaced by ``replacement`` (``re.sub``).

    For a feature whose URLs carry a secret; what matches is never written to the
    access log (the whole path is redacted, then cut to length).
    """
    redactions: list[tuple[re.Pattern[str], str]] = app.extensions.setdefault(REDACTIONS, [])
    redactions.append((re.compile(pattern), replacement))

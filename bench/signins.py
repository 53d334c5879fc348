"""The sign-in storm's clients: people signing in through the form, over and over.

Each client is a person at a browser with no cookies: it loads ``/login``, reads the CSRF
token from the page, posts the form and expects the redirect to ``/hello``, then forgets
its cookies and starts again. Each signs in as a user of its own from an address of its
own (127.0.0.2, 127.0.0.3...: all of 127/8 is loopback), as 8 people would: the hashing
line gives one address or one name only its share of places, so 8 clients from one
address would mostly be told to come back later. They run as asyncio tasks (httpx) in a
thread of their own, beside wrk's run of ``/hello``, and count the logins that succeeded
and when.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field

import httpx

from bench.servers import BenchError, csrf_token

CLIENTS = 8
# A client waits no longer than this for one answer; a login queued for the hashing
# slots waits seconds at most.
TIMEOUT = 30.0


@dataclass
class Tally:
    """What the clients did: the times of their logins, and what went wrong."""

    started: float = 0.0
    stopped: float = 0.0
    logins: list[float] = field(default_factory=list)
    window: tuple[float, float] = (0.0, 0.0)  # the measured run the storm stood beside
    busy: int = 0  # 503s: the hashing line was full (each client waits as asked)
    failures: list[str] = field(default_factory=list)

    def rate(self, start: float, end: float) -> float:
        """Logins per second completed between ``start`` and ``end``."""
        inside = sum(1 for at in self.logins if start <= at <= end)
        return inside / (end - start) if end > start else 0.0

    @property
    def per_second(self) -> float:
        """Logins per second during the measured run (the whole storm without one)."""
        return self.rate(*self.window) if self.window[1] else self.rate(self.started, self.stopped)


class SignIns:
    """One asyncio client per ``users`` entry, signing in to ``url`` until stopped."""

    def __init__(self, url: str, users: list[tuple[str, str]]) -> None:
        self.url = url
        self.users = users
        self.tally = Tally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sign-in storm", daemon=True)

    def __enter__(self) -> SignIns:
        self.tally.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(TIMEOUT + 5)
        self.tally.stopped = time.monotonic()
        if self.tally.failures and not self.tally.logins:
            raise BenchError(f"the sign-in storm logged in no one: {self.tally.failures[0]}")

    def _run(self) -> None:
        asyncio.run(self._storm())

    async def _storm(self) -> None:
        await asyncio.gather(*(self._client(n, user) for n, user in enumerate(self.users)))

    async def _client(self, number: int, user: tuple[str, str]) -> None:
        # Its own connection, address and cookie jar, as a browser on its own machine.
        transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{number + 2}")
        async with httpx.AsyncClient(
            base_url=self.url, timeout=TIMEOUT, transport=transport
        ) as http:
            await self._loop(http, *user)

    async def _loop(self, http: httpx.AsyncClient, username: str, password: str) -> None:
        while not self._stop.is_set():
            try:
                await self._sign_in(http, username, password)
            except httpx.HTTPError as error:
                self.tally.failures.append(f"{type(error).__name__}: {error}")
                await asyncio.sleep(0.1)

    async def _sign_in(self, http: httpx.AsyncClient, username: str, password: str) -> None:
        """One login from a fresh browser; its time goes in the tally when it worked."""
        http.cookies.clear()
        page = await http.get("/login")
        token = csrf_token(page.text)
        if page.status_code != 200 or token is None:
            self.tally.failures.append(f"GET /login answered {page.status_code}")
            return
        form = {"username": username, "password": password, "csrf_token": token}
        answer = await http.post("/login", data=form)
        if answer.status_code == 503:
            self.tally.busy += 1
            await asyncio.sleep(float(answer.headers.get("Retry-After", "1")))
        elif answer.status_code in (302, 303) and answer.headers["location"].endswith("/hello"):
            self.tally.logins.append(time.monotonic())
        else:
            self.tally.failures.append(f"POST /login answered {answer.status_code}")

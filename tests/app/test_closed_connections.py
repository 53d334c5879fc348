"""hypercorn's workers forget a connection once its client closes it (``quartapp.supervisor``).

Counted, not timed: the connection's task on hypercorn's own asyncio server, which
without the fix lives on until the keep-alive timeout (95 s in hypercorn.toml).
"""

from __future__ import annotations

import asyncio
from typing import Any

from hypercorn.asyncio import serve
from hypercorn.config import Config

from quartapp.supervisor import release_closed_connections
from tests.support.ports import free_port

KEEP_ALIVE = 95.0
# Far below the keep-alive timeout, far above what closing takes.
FORGOTTEN_WITHIN = 5.0


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The smallest ASGI app: ``ok`` to every request, and a lifespan that just starts."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].removeprefix("lifespan.")
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def connections() -> list[asyncio.Task[Any]]:
    """The tasks serving a connection (hypercorn's ``_server_callback``)."""
    return [
        task
        for task in asyncio.all_tasks()
        if "_server_callback" in getattr(task.get_coro(), "__qualname__", "")
    ]


async def test_a_connection_its_client_closed_is_forgotten_before_the_keep_alive_timeout() -> None:
    release_closed_connections()
    port = free_port()
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.keep_alive_timeout = KEEP_ALIVE
    config.errorlog = None
    stop = asyncio.Event()
    server = asyncio.create_task(serve(hello, config, shutdown_trigger=stop.wait))  # type: ignore[arg-type]
    try:
        for _ in range(100):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        writer.write(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200")
        open_connections = connections()
        assert len(open_connections) == 1  # idle, kept alive for the next request

        writer.close()
        await writer.wait_closed()

        _, pending = await asyncio.wait(open_connections, timeout=FORGOTTEN_WITHIN)
        assert not pending
    finally:
        stop.set()
        await server
        # The server closed its side of the connection; the transport finishes closing
        # in a callback on the loop's next turn. Without that turn the loop ends with it
        # half-closed, and the garbage collector finds it in a later test, as an
        # "unclosed transport" ResourceWarning at that test's setup.
        await asyncio.sleep(0)
        await asyncio.sleep(0)

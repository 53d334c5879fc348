"""A TCP proxy that holds every chunk for a set delay each way, as a network would.

``python -m bench.proxy UPSTREAM_PORT [UPSTREAM_PORT ...]`` listens on one free port of
127.0.0.1 per upstream port (upstreams are on 127.0.0.1 too), prints the listening ports
as one JSON line, then reads delays in milliseconds from stdin, one a line; the first
delay is 0. A managed database a few metres of data centre away is about 1 ms each way.

Each direction of a connection has its own queue of (due time, chunk): reading stamps a
chunk and queues it at once, and a writer sends each chunk when it is due, in order. So
the delay is latency only: chunks in flight overlap, and a busy connection still moves
as many bytes a second as it would without the proxy. A new delay applies to chunks
read after it arrives; a chunk never overtakes an earlier one.
"""

from __future__ import annotations

import asyncio
import json
import sys

CHUNK = 65536


class Delay:
    """The delay now in force, in seconds; read as each chunk arrives."""

    seconds = 0.0


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Forward one direction: stamp chunks as they are read, write them once due.

    The end of the stream is passed on as a half-close, after every chunk before it.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()

    async def read() -> None:
        try:
            while chunk := await reader.read(CHUNK):
                queue.put_nowait((loop.time() + Delay.seconds, chunk))
        except OSError:
            pass  # a reset ends this direction like an end of stream
        finally:
            queue.put_nowait(None)

    reading = asyncio.create_task(read())
    try:
        while (item := await queue.get()) is not None:
            due, chunk = item
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    finally:
        reading.cancel()


async def serve(upstream: int) -> asyncio.Server:
    """A listener on a free port of 127.0.0.1 that proxies to ``upstream`` there."""

    async def connected(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        directions = [
            asyncio.create_task(pump(client_r, server_w)),
            asyncio.create_task(pump(server_r, client_w)),
        ]
        try:
            await asyncio.gather(*directions)
        except OSError:
            pass  # one side went away: close both
        finally:
            for task in directions:
                task.cancel()
            for writer in (client_w, server_w):
                writer.close()

    return await asyncio.start_server(connected, "127.0.0.1", 0)


async def main(upstreams: list[int]) -> None:
    """Listen for every upstream, say where, and take delays from stdin until it closes."""
    listeners = [await serve(port) for port in upstreams]
    ports = [listener.sockets[0].getsockname()[1] for listener in listeners]
    print(json.dumps({"ports": ports}), flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        Delay.seconds = float(line) / 1000
        print(json.dumps({"delay_ms": float(line)}), flush=True)
    for listener in listeners:
        listener.close()


if __name__ == "__main__":
    asyncio.run(main([int(port) for port in sys.argv[1:]]))

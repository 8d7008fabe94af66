"""The serving socket: connections accepted on it must have Nagle's algorithm off, or every response
waits for the client's delayed ACK (~40 ms per request on Linux loopback)."""

from __future__ import annotations

import asyncio
import socket

from diary_integrations.server.run import bind


def test_accepted_connections_have_nagle_off():
    listener = bind("127.0.0.1", 0)
    seen: list[int] = []

    async def main() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = writer.get_extra_info("socket")
            seen.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        # The same path uvicorn takes with a pre-bound socket: asyncio's create_server(sock=...).
        server = await asyncio.start_server(handle, sock=listener)
        async with server:
            reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
            await reader.read()
            writer.close()

    asyncio.run(main())
    assert len(seen) == 1 and seen[0] != 0

"""A TCP proxy on loopback that loses answers: it relays requests to the server, and cuts the
connection instead of relaying every `every`-th answer, after the server has done the work. This is
what a load balancer's timeout or a dropped link does, and the one case a retry could write twice."""

from __future__ import annotations

import asyncio
import threading


class LossyProxy:
    def __init__(self, upstream_port: int, every: int) -> None:
        self.upstream_port = upstream_port
        self.every = every
        self.answers = 0
        self.lost = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LossyProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

        async def requests() -> None:
            while data := await client_reader.read(65536):
                server_writer.write(data)
                await server_writer.drain()
            server_writer.close()

        async def answers() -> None:
            while data := await server_reader.read(65536):
                self.answers += 1
                if self.answers % self.every == 0:
                    self.lost += 1
                    break  # the server answered; the client never hears it
                client_writer.write(data)
                await client_writer.drain()
            client_writer.close()
            server_writer.close()

        await asyncio.gather(requests(), answers(), return_exceptions=True)

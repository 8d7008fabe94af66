"""Request bodies sent with `Content-Encoding: gzip`, inflated within the server's size limit.

A pure ASGI middleware inside `BodyLimit` (which has already bounded the compressed bytes and checked the
token): the body is inflated as it arrives, a bounded step at a time, and never to more than
`DIARY_MAX_REQUEST_BYTES`. A body that would inflate beyond that (a decompression bomb: a few kilobytes
that unpack to gigabytes) is answered 413 the moment it passes the limit, so it never costs more memory
than an honest request of the limit's size. Data that is not gzip is a 422 naming the header; any other
encoding is a 415. The routes then see a plain body (no `Content-Encoding`, its inflated `Content-Length`).
"""

from __future__ import annotations

import zlib
from typing import Any

from .responses import error

ENCODING_HEADER = b"content-encoding"
# What a client may send (the answer to `GET /health` lists it, so a client knows before it compresses).
ACCEPTED_ENCODINGS = ("gzip",)
_IDENTITY = (b"", b"identity")
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # the gzip wrapper, not raw deflate or zlib's


def inflated_too_large(limit: int) -> Any:
    """The 413 for a body that inflates beyond the limit."""
    return error(413, "PAYLOAD_TOO_LARGE",
                 f"request body inflates (Content-Encoding: gzip) to more than the server's limit of {limit} "
                 "bytes, DIARY_MAX_REQUEST_BYTES", field="Content-Encoding")


def not_gzip(why: str) -> Any:
    """The 422 for a body that is not the gzip data its header says."""
    return error(422, "INVALID_PAYLOAD", f"body is not valid gzip data (Content-Encoding: gzip): {why}",
                 field="Content-Encoding")


class GzipBodies:
    def __init__(self, app: Any, server: Any) -> None:
        self.app = app
        self.server = server  # the FastAPI app, for its settings

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        encoding = next((v for k, v in scope["headers"] if k == ENCODING_HEADER), None)
        if encoding is None or encoding.strip().lower() in _IDENTITY:
            await self.app(scope, receive, send)
            return
        if encoding.strip().lower() != b"gzip":
            shown = encoding.decode("latin-1")[:100]
            await error(415, "UNSUPPORTED_ENCODING",
                        f"Content-Encoding {shown!r} is not accepted; send gzip or no encoding",
                        field="Content-Encoding")(scope, receive, send)
            return
        body = await self._inflate(scope, receive, send)
        if body is None:
            return  # answered already (or the client went away, or BodyLimit cut the body off)
        headers = [(k, v) for k, v in scope["headers"] if k not in (ENCODING_HEADER, b"content-length")]
        headers.append((b"content-length", str(len(body)).encode()))
        delivered = False

        async def inflated_receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: a disconnect, when it comes

        await self.app({**scope, "headers": headers}, inflated_receive, send)

    async def _inflate(self, scope: dict[str, Any], receive: Any, send: Any) -> bytes | None:
        """The whole inflated body, or None once an error was answered (or nothing is left to answer)."""
        limit = self.server.state.settings.max_request_bytes
        inflater = zlib.decompressobj(_GZIP_WBITS)
        parts: list[bytes] = []
        size = 0
        seen_any = False
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return None  # a disconnect: BodyLimit answers 413 if it was its doing
            more = bool(message.get("more_body"))
            data = message.get("body", b"")
            seen_any = seen_any or bool(data)
            while data:
                if inflater.eof:
                    await not_gzip("data after the end of the gzip stream")(scope, receive, send)
                    return None
                try:
                    # At most one byte past the limit per step: a bomb is stopped after `limit + 1` bytes,
                    # never inflated whole; the input not yet inflated waits in `unconsumed_tail`.
                    out = inflater.decompress(data, limit - size + 1)
                except zlib.error as exc:
                    await not_gzip(str(exc))(scope, receive, send)
                    return None
                size += len(out)
                if size > limit:
                    await inflated_too_large(limit)(scope, receive, send)
                    return None
                parts.append(out)
                data = inflater.unconsumed_tail
                if inflater.unused_data:
                    await not_gzip("data after the end of the gzip stream")(scope, receive, send)
                    return None
        if not seen_any:
            return b""  # no body at all: nothing to inflate
        if not inflater.eof:
            await not_gzip("the gzip stream ends early")(scope, receive, send)
            return None
        return b"".join(parts)

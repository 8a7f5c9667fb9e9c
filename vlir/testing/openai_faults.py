"""Faults of a broken or hostile teacher endpoint, for :class:`~vlir.testing.openai_server.FakeOpenAIServer`
scripts (alongside its ``Reply`` and ``Status``):

* :class:`Hang` — read the request, answer nothing; :class:`Drop` — close the connection;
* :class:`Drip` — a 200 whose body trickles out a byte at a time: each read succeeds well within
  any per-read timeout, so only a total deadline per request stops it;
* :class:`Html` — an HTML page (a proxy's error page, a captive portal) with any status, and a
  ``Content-Type`` that may claim ``application/json``;
* :class:`Cut` — a 200 chat completion that breaks off after ``keep`` bytes of its body;
* :class:`Huge` — a 200 chat completion whose content is ``size`` bytes of non-JSON text, streamed
  in chunks (the server never holds it whole);
* :func:`refused_url` — a base URL where nothing listens (connection refused);
* a 500 storm is ``srv.script("", Status(500))`` (an empty match catches every request).
"""

from __future__ import annotations

import json
import socket
import threading
from dataclasses import dataclass
from typing import Any, Union

_CHUNK = 1 << 16


@dataclass(frozen=True)
class Hang:
    """Read the request, then answer nothing for ``seconds`` (or until the server stops)."""

    seconds: float = 60.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without an answer."""


@dataclass(frozen=True)
class Drip:
    """A 200 answering ``content`` one byte every ``interval_s`` seconds."""

    content: str = '{"steps": [], "answer": "slow"}'
    interval_s: float = 0.2


@dataclass(frozen=True)
class Html:
    """An HTML page with ``status``, labelled ``content_type``."""

    status: int = 200
    content_type: str = "text/html; charset=utf-8"
    page: str = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"


@dataclass(frozen=True)
class Huge:
    """A 200 chat completion whose message content is ``size`` bytes of ``fill``, between ``before``
    and ``after`` (e.g. ``'{"steps": [{"think": "'`` and ``'"}], "answer": "a"}'``: a valid-looking
    teacher answer, only too big)."""

    size: int = 40 << 20
    fill: str = "x"
    before: str = ""
    after: str = ""


@dataclass(frozen=True)
class Cut:
    """A 200 whose connection closes after ``keep`` bytes of a longer declared body."""

    keep: int = 40


Fault = Union[Drip, Html, Huge, Cut]
FAULTS = (Drip, Html, Huge, Cut)


def status_of(fault: Fault) -> int:
    return fault.status if isinstance(fault, Html) else 200


def refused_url() -> str:
    """An ``http://127.0.0.1:PORT/v1`` where nothing listens: the port was bound, then released."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def _completion_parts(content_len: int, model: str, before: str = "", after: str = "") -> tuple[bytes, bytes]:
    """The JSON of a chat completion cut where ``content_len`` bytes of content go (between
    ``before`` and ``after``): (head, tail)."""
    marker = "\u0000CONTENT\u0000"
    text = json.dumps({"id": "chatcmpl-huge", "object": "chat.completion", "created": 0, "model": model,
                       "choices": [{"index": 0, "finish_reason": "length",
                                    "message": {"role": "assistant", "content": before + marker + after}}],
                       "usage": {"prompt_tokens": 1, "completion_tokens": content_len,
                                 "total_tokens": content_len + 1}})
    head, tail = text.split(json.dumps(marker)[1:-1])
    return head.encode(), tail.encode()


def write_fault(handler: Any, fault: Fault, model: str, stopping: threading.Event) -> None:
    """Write ``fault`` as the response on ``handler`` (a BaseHTTPRequestHandler). Raises OSError
    when the client hangs up."""
    if isinstance(fault, Html):
        _head(handler, fault.status, fault.content_type, len(fault.page.encode()))
        handler.wfile.write(fault.page.encode())
    elif isinstance(fault, Huge):
        fill = fault.fill.encode()
        assert len(fill) == 1 and fill not in b'"\\', "fill must be one plain ASCII character"
        head, tail = _completion_parts(fault.size, model, fault.before, fault.after)
        _head(handler, 200, "application/json", len(head) + fault.size + len(tail))
        handler.wfile.write(head)
        left = fault.size
        while left > 0:
            n = min(_CHUNK, left)
            handler.wfile.write(fill * n)
            left -= n
        handler.wfile.write(tail)
    elif isinstance(fault, Cut):
        head, tail = _completion_parts(100, model)
        _head(handler, 200, "application/json", len(head) + 100 + len(tail))
        handler.wfile.write((head + b"x" * 100 + tail)[:fault.keep])
        handler.wfile.flush()
        handler.close_connection = True
        handler.connection.shutdown(socket.SHUT_WR)
    else:
        body = json.dumps({"id": "chatcmpl-drip", "object": "chat.completion", "created": 0,
                           "model": model, "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": fault.content}}]}).encode()
        _head(handler, 200, "application/json", len(body))
        for i in range(len(body)):
            handler.wfile.write(body[i:i + 1])
            handler.wfile.flush()
            if stopping.wait(fault.interval_s):
                raise ConnectionAbortedError("server stopping")
    handler.wfile.flush()


def _head(handler: Any, status: int, content_type: str, length: int) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(length))
    handler.end_headers()
    handler.wfile.flush()

"""A loopback HTTP server that speaks OpenAI's ``POST /v1/chat/completions``, for tests and benches.

A real server on 127.0.0.1 (threads, HTTP/1.1 keep-alive), so the teacher annotator is exercised
through the official ``openai`` client exactly as against GPT-4o or vLLM. Behaviour is scripted:

* :meth:`FakeOpenAIServer.script` — requests whose text contains a substring get the listed
  actions in turn (the last one repeats): :class:`Reply`, :class:`Status` (429 with Retry-After,
  500...), :class:`Hang` (no answer until the client gives up), :class:`Drop` (close the socket),
  :class:`Default` (what the responder would say), and the faults of
  :mod:`vlir.testing.openai_faults` (:class:`Drip`, :class:`Html`, :class:`Huge`); the actions and
  the default responder live in :mod:`vlir.testing.openai_script` and are re-exported here;
* otherwise the ``responder`` decides (default :func:`echo_chain_responder`: a valid chain built
  from the hint boxes and the gold answer found in the prompt);
* ``latency_s`` delays every answer; :meth:`hold` parks every request not yet answered until
  :meth:`release`, which may abandon them (how a test freezes the server before it kills a client);
  :meth:`kill` makes it die as a killed server process would (for several-endpoint tests).

It counts requests received and those answered with 200 per request body (:meth:`answered_keys`),
so a test can prove nothing was asked twice. "Answered" means the whole response reached a client
still connected (as vLLM, which aborts on disconnect, would count it).

Standalone (the bench): ``python -m vlir.testing.openai_server --latency-ms 200`` prints its URL.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from vlir.testing.openai_faults import FAULTS, Cut, Drip, Drop, Fault, Hang, Html, Huge
from vlir.testing.openai_faults import refused_url, status_of, write_fault
from vlir.testing.openai_script import (Action, Default, Reply, Responder, Rule, Status, echo_chain_responder,
                                        request_key, request_text)

__all__ = ["Cut", "Default", "Drip", "Drop", "FakeOpenAIServer", "Hang", "Html", "Huge", "Reply", "Status",
           "echo_chain_responder", "refused_url"]


@dataclass
class RequestLog:
    key: str
    text: str
    status: int | None = None  # None: hung, dropped, abandoned, or its client left before the answer
    structured: bool = False
    authorization: str = field(default="", repr=False)
    body: dict[str, Any] | None = field(default=None, repr=False)  # with keep_bodies only


class FakeOpenAIServer:
    """Start with ``with FakeOpenAIServer() as srv:`` (or :meth:`start`/:meth:`stop`)."""

    def __init__(self, responder: Responder = echo_chain_responder, latency_s: float = 0.0,
                 structured_outputs: bool = True, model: str = "fake-teacher",
                 keep_bodies: bool = False):
        self.responder = responder
        self.keep_bodies = keep_bodies
        self.in_flight = 0
        self.max_in_flight = 0
        self.latency_s = latency_s
        self.structured_outputs = structured_outputs
        self.model = model
        self.log: list[RequestLog] = []
        self._rules: list[Rule] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._gate = threading.Event()
        self._gate.set()
        self._hold_gen = 0
        self._hold_after: int | None = None
        self._abandoned_gen = -1
        self._dead = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- control ---------------------------------------------------------------------------
    def script(self, match: str, *actions: Action) -> None:
        """Requests whose text contains ``match`` get ``actions`` in order; the last repeats."""
        with self._lock:
            self._rules.append(Rule(match, list(actions)))

    def unscript(self) -> None:
        """Forget every script: the server is well again (an outage is over)."""
        with self._lock:
            self._rules.clear()

    def hold(self) -> None:
        """Park every request not yet answered (it is counted, and stays waiting) until
        :meth:`release`. Atomic with the answers: once ``hold`` returns, the answers already under
        way are exactly those :meth:`answered` counts, and no other goes out."""
        with self._lock:
            self._hold_gen += 1
            self._gate.clear()

    def hold_after(self, n: int) -> None:
        """Answer ``n`` requests in all, then :meth:`hold` by itself (atomic with the answers): a
        test that kills a client mid-run waits for this state instead of racing a client that, on
        a loaded machine, may get every answer before the test's own :meth:`hold` call."""
        with self._lock:
            self._hold_after = n

    def release(self, abandon: bool = False) -> None:
        """Let parked requests through; with ``abandon`` they are closed unanswered instead (their
        client is gone, e.g. killed: an answer nobody read must not count as answered). Ends a
        :meth:`hold_after` too."""
        with self._lock:
            self._hold_after = None
            if abandon:
                self._abandoned_gen = self._hold_gen
            self._gate.set()

    def kill(self) -> None:
        """Die as a killed server process would: no request not yet answered gets an answer (its
        connection closes), a kept-alive connection answers nothing more, new ones are refused.
        The counters keep what was answered before."""
        with self._lock:
            self._dead = True
            self._gate.set()  # parked requests wake, find the server dead and close
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FakeOpenAIServer":
        handler = type("Handler", (_Handler,), {"fake": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler, bind_and_activate=False)
        httpd.daemon_threads = True
        httpd.request_queue_size = 256  # the default backlog of 5 drops bursts of connections
        httpd.server_bind()
        httpd.server_activate()
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._gate.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> "FakeOpenAIServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- counters --------------------------------------------------------------------------
    def count(self, match: str | None = None) -> int:
        """Requests received (whatever became of them), optionally only those containing ``match``."""
        with self._lock:
            return sum(1 for r in self.log if match is None or match in r.text)

    def answered(self, match: str | None = None) -> int:
        """Requests answered with 200."""
        with self._lock:
            return sum(1 for r in self.log if r.status == 200 and (match is None or match in r.text))

    def answered_keys(self) -> Counter:
        """How many times each distinct request body was answered with 200."""
        with self._lock:
            return Counter(r.key for r in self.log if r.status == 200)

    def waiting(self) -> int:
        """Requests received and not (yet) answered."""
        with self._lock:
            return sum(1 for r in self.log if r.status is None)

    # -- serving ---------------------------------------------------------------------------
    def _decide(self, body: dict[str, Any], text: str) -> Action:
        rf = body.get("response_format") or {}
        if rf.get("type") == "json_schema" and not self.structured_outputs:
            return Status(400, message="response_format type json_schema is not supported by this server")
        with self._lock:
            rule = next((r for r in self._rules if r.match in text), None)
            scripted = rule.next() if rule is not None else Default()
        if not isinstance(scripted, Default):
            return scripted
        action = self.responder(body)
        return Reply(action) if isinstance(action, str) else action


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAIServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle on, the body waits for the client's
    # delayed ACK (~40 ms on Linux), which would dwarf a realistic latency.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        if fake._dead:  # a request on a connection kept alive past kill(): nobody answers
            self.close_connection = True
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        text = request_text(body)
        entry = RequestLog(request_key(body), text, structured=bool(body.get("response_format")),
                           authorization=self.headers.get("Authorization", ""),
                           body=body if fake.keep_bodies else None)
        with fake._lock:
            fake.log.append(entry)
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            answer = self._answer(fake, body, text, entry)
        finally:
            with fake._lock:  # before the answer is written: the client may reuse the slot at once
                fake.in_flight -= 1
        if answer is None:
            self.close_connection = True
            return
        try:
            if isinstance(answer, FAULTS):
                write_fault(self, answer, body.get("model") or fake.model, fake._stopping)
            else:
                self._send(*answer)
        except OSError:  # the client hung up while the answer was going out: it never read it
            with fake._lock:
                entry.status = None
            self.close_connection = True

    def _answer(self, fake: FakeOpenAIServer, body: dict[str, Any], text: str,
                entry: RequestLog) -> tuple[int, dict[str, Any], dict[str, str]] | Fault | None:
        """What to send back (None: close the connection without an answer)."""
        if fake.latency_s:
            fake._stopping.wait(fake.latency_s)
        action = fake._decide(body, text)  # an abandoned request has used its scripted action
        if isinstance(action, (Hang, Drop)):
            if not self._commit(fake, entry, None):
                return None
            if isinstance(action, Hang):
                fake._stopping.wait(action.seconds)
            return None
        if isinstance(action, FAULTS):
            return action if self._commit(fake, entry, status_of(action)) else None
        if isinstance(action, Status):
            if not self._commit(fake, entry, action.code):
                return None
            headers = {} if action.retry_after is None else {"Retry-After": f"{action.retry_after:g}"}
            return action.code, {"error": {"message": action.message, "type": "scripted",
                                           "code": action.code}}, headers
        if not self._commit(fake, entry, 200):
            return None
        return 200, {
            "id": f"chatcmpl-{entry.key[:12]}", "object": "chat.completion", "created": 0,
            "model": body.get("model") or fake.model,
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": action.content}}],
            "usage": {"prompt_tokens": action.prompt_tokens,
                      "completion_tokens": action.completion_tokens,
                      "total_tokens": action.prompt_tokens + action.completion_tokens},
        }, {}

    def _commit(self, fake: FakeOpenAIServer, entry: RequestLog, status: int | None) -> bool:
        """The one point where a request becomes answered: parked while the server is held, and
        refused (False) if it was abandoned or its client is gone. The status is set under the
        lock that :meth:`FakeOpenAIServer.hold` takes, so no answer slips out after a hold."""
        while True:
            with fake._lock:
                if fake._dead:
                    return False
                if fake._gate.is_set() and fake._hold_after is not None and status == 200 and \
                        sum(e.status == 200 for e in fake.log) >= fake._hold_after:
                    fake._hold_gen += 1  # hold_after: this answer would be one too many
                    fake._gate.clear()
                if fake._gate.is_set():
                    if self._client_gone():
                        return False
                    entry.status = status
                    return True
                parked_in = fake._hold_gen
            fake._gate.wait()
            if parked_in == fake._abandoned_gen:
                return False

    def _client_gone(self) -> bool:
        """Has the client closed its end? HTTP/1.1 clients send nothing while awaiting an answer,
        so a readable socket with no bytes (EOF) or a reset means it hung up."""
        sock = self.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):  # reset, or already closed
            return True

    def _send(self, code: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--no-structured-outputs", action="store_true")
    args = parser.parse_args(argv)
    server = FakeOpenAIServer(latency_s=args.latency_ms / 1000,
                              structured_outputs=not args.no_structured_outputs).start()
    sys.stdout.write(server.base_url + "\n")
    sys.stdout.flush()
    try:
        sys.stdin.read()  # serve until the parent closes our stdin (or kills us)
    except KeyboardInterrupt:
        pass
    finally:
        sys.stderr.write(json.dumps({"requests": server.count(), "answered": server.answered()}) + "\n")
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

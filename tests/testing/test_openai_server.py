"""The loopback OpenAI server's own contract, read with a plain HTTP client: a scripted fault is what
goes on the wire (the teacher tests and the fault probes rely on it)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from vlir.testing.openai_server import FakeOpenAIServer, Huge, Reply, Status


def _post(url: str, text: str) -> tuple[int, dict]:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": text}]}).encode()
    req = urllib.request.Request(url + "/chat/completions", body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_huge_wraps_its_fill_so_the_content_can_be_a_valid_looking_answer():
    with FakeOpenAIServer() as srv:
        srv.script("big", Huge(size=5000, before='{"steps": [{"think": "', after='"}], "answer": "coffee"}'))
        status, payload = _post(srv.base_url, "big one")
    content = json.loads(payload["choices"][0]["message"]["content"])
    assert status == 200 and content["answer"] == "coffee" and content["steps"][0]["think"] == "x" * 5000


def test_scripts_run_in_turn_and_the_last_action_repeats():
    with FakeOpenAIServer() as srv:
        srv.script("q", Status(503), Reply("fine"))
        got = [_post(srv.base_url, "q")[0] for _ in range(3)]
        assert got == [503, 200, 200] and srv.count("q") == 3 and srv.answered("q") == 2

"""The shared LLM client (vlir.llm): retry policy and loop, breaker, key reading, cached calls."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import httpx2 as httpx
import openai
import pytest

from vlir.llm import keys, retry
from vlir.llm.breaker import Breaker
from vlir.llm.client import ChatCaller, LLMError, served_caller

REQUEST = httpx.Request("POST", "http://llm/v1/chat/completions")


def status_error(status: int, headers: dict | None = None, text: str = "nope") -> openai.APIStatusError:
    cls = {401: openai.AuthenticationError, 400: openai.BadRequestError, 429: openai.RateLimitError}.get(
        status, openai.APIStatusError)
    return cls(text, response=httpx.Response(status, headers=headers or {}, request=REQUEST), body=None)


def connection_error() -> openai.APIConnectionError:
    return openai.APIConnectionError(request=REQUEST)


class Scripted:
    """A fake ``openai`` client: each call pops the next outcome (an exception is raised, a string
    is the reply) and records the kwargs."""

    def __init__(self, *outcomes):
        self.outcomes, self.sent = list(outcomes), []
        self.chat = SimpleNamespace(completions=SimpleNamespace(create=self.create))

    def create(self, **kwargs):
        self.sent.append(kwargs)
        out = self.outcomes.pop(0)
        if isinstance(out, BaseException):
            raise out
        usage = SimpleNamespace(prompt_tokens=3, completion_tokens=1)
        return SimpleNamespace(choices=[SimpleNamespace(message=SimpleNamespace(content=out))], usage=usage)


FAST = retry.RetryPolicy(max_retries=2, backoff_s=0.0, max_backoff_s=0.0)


def test_delays_honour_retry_after_and_back_off_with_jitter():
    policy = retry.RetryPolicy(max_retries=3, backoff_s=1.0, max_backoff_s=5.0)
    plain = Exception()
    for attempt, (low, high) in enumerate([(0.5, 1.0), (1.0, 2.0), (2.0, 4.0), (2.5, 5.0)]):
        assert all(low <= policy.delay(attempt, plain) <= high for _ in range(30))
    told = status_error(429, {"retry-after": "2"})
    assert all(2.0 <= policy.delay(0, told) <= 2.2 for _ in range(30))
    assert policy.delay(0, status_error(429, {"retry-after": "600"})) == 5.0


def test_transport_failures_are_the_retryable_ones():
    assert retry.is_transport(connection_error()) and retry.is_transport(status_error(503))
    assert retry.is_transport(status_error(429)) and retry.is_transport(status_error(408))
    assert not retry.is_transport(status_error(400)) and not retry.is_transport(status_error(401))
    assert not retry.is_transport(ValueError("x"))


def test_call_retries_then_reraises_and_reports_each_retry():
    seen, slept = [], []
    outcomes = [connection_error(), status_error(502), "ok"]

    def fn():
        out = outcomes.pop(0)
        if isinstance(out, BaseException):
            raise out
        return out
    assert retry.call(FAST, fn, on_retry=lambda n, e, d: seen.append(n), sleep=slept.append) == "ok"
    assert seen == [1, 2] and slept == [0.0, 0.0]
    with pytest.raises(openai.APIConnectionError):
        retry.call(FAST, lambda: (_ for _ in ()).throw(connection_error()), sleep=slept.append)
    calls = []
    with pytest.raises(openai.BadRequestError):  # not a transport failure: no retry
        retry.call(FAST, lambda: calls.append(1) or (_ for _ in ()).throw(status_error(400)), sleep=slept.append)
    assert calls == [1]


def test_breaker_benches_then_lets_one_probe_through():
    now = [0.0]
    b = Breaker(threshold=2, bench_s=10.0, clock=lambda: now[0])
    assert not b.failed("x") and b.available()
    assert b.failed("y") and not b.available() and b.last_failure == "y"
    now[0] = 10.0
    assert b.available(in_flight=0) and not b.available(in_flight=1)  # one probe at a time
    b.succeeded()
    assert b.available(in_flight=5)


def test_key_names_not_keys(monkeypatch, caplog):
    with pytest.raises(ValueError, match="NAME of the environment variable") as refused:
        keys.check_env_name("sk-proj-abcdefghijklmnop1234")
    assert "abcdefgh" not in str(refused.value)
    monkeypatch.delenv("VLIR_LLM_TEST_KEY", raising=False)
    with pytest.raises(ValueError, match=r"the judge needs an API key in \$VLIR_LLM_TEST_KEY"):
        keys.api_key("VLIR_LLM_TEST_KEY", required_by="the judge")
    with caplog.at_level(logging.WARNING, logger="vlir.llm.keys"):
        assert keys.api_key("VLIR_LLM_TEST_KEY") == keys.NO_KEY
        assert keys.api_key("VLIR_LLM_TEST_KEY") == keys.NO_KEY
    assert sum("VLIR_LLM_TEST_KEY is not set" in r.message for r in caplog.records) == 1  # warned once
    monkeypatch.setenv("VLIR_LLM_TEST_KEY", "sk-test-value-123456")
    assert keys.api_key("VLIR_LLM_TEST_KEY") == "sk-test-value-123456"


def test_chat_caller_retries_caches_and_never_writes_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("VLIR_LLM_TEST_KEY", "sk-secret-zzzz-987654321")
    client = Scripted(connection_error(), "yes")
    caller = ChatCaller("m", "http://llm/v1", api_key_env="VLIR_LLM_TEST_KEY", policy=FAST,
                        cache=tmp_path / "c.sqlite", kind="test", client=client)
    messages = [{"role": "user", "content": "q"}]
    answer = caller.complete(messages, temperature=0.2)
    assert answer.content == "yes" and answer.prompt_tokens == 3 and caller.calls == 2 and caller.retries == 1
    assert client.sent[-1] == {"model": "m", "messages": messages, "temperature": 0.2}
    assert caller.complete(messages, temperature=0.2).content == "yes" and caller.calls == 2  # from the cache
    with pytest.raises(IndexError):  # another temperature is another request: asked again
        caller.complete(messages, temperature=0.0)
    assert b"sk-secret" not in (tmp_path / "c.sqlite").read_bytes()


def test_chat_caller_failures_are_one_line_with_the_key_masked(monkeypatch):
    monkeypatch.setenv("VLIR_LLM_TEST_KEY", "sk-secret-zzzz-987654321")
    echo = status_error(401, text="bad key sk-secret-zzzz-987654321")
    caller = ChatCaller("m", "http://llm/v1", api_key_env="VLIR_LLM_TEST_KEY", policy=FAST, client=Scripted(echo))
    with pytest.raises(LLMError, match=r"HTTP 401.*check the key in \$VLIR_LLM_TEST_KEY") as failed:
        caller.create(messages=[])
    assert "sk-secret" not in str(failed.value) and failed.value.status == 401
    down = ChatCaller("m", "http://llm/v1", policy=FAST, breaker=Breaker(2, 60.0),
                      client=Scripted(*[connection_error()] * 3))
    with pytest.raises(LLMError, match="benched after 2 transport failures"):
        down.create(messages=[])  # the second failure benched it: the last retry is not sent
    with pytest.raises(LLMError, match="benched"):
        down.create(messages=[])
    assert down.calls == 2


def test_served_caller_is_a_configured_uncached_caller(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-served-key-abcdef123")
    client = Scripted(connection_error(), "<answer>A</answer>")
    caller = served_caller("http://vllm/v1", "policy", max_retries=1, client=client)
    assert caller.cache is None and caller.policy.max_retries == 1
    monkeypatch.setattr(retry.RetryPolicy, "delay", lambda self, attempt, exc: 0.0)
    resp = caller.create(messages=[{"role": "user", "content": "q"}], temperature=1.0, max_tokens=8)
    assert resp.choices[0].message.content == "<answer>A</answer>" and len(client.sent) == 2
    assert client.sent[0]["model"] == "policy" and client.sent[0]["max_tokens"] == 8
    kwargs = dict(model="policy", messages=[], max_tokens=4, extra_body={"top_k": 1})  # the engine's own call
    client.outcomes.append("B")
    assert caller.create(**kwargs).choices[0].message.content == "B" and client.sent[-1] == kwargs

"""The teacher annotator against a real loopback HTTP server speaking the chat-completions API:
valid chains, garbage, schema violations, boxes outside the image, 429 + Retry-After, 500, a hung
connection, dropped connections, the cache, concurrency, structured-output fallback, the judge, and
the API key never leaking."""

from __future__ import annotations

import base64
import io
import json
import logging
import pickle
import re
import sqlite3

import pytest
from PIL import Image

from tests.annotate.teacher_support import annotate, config, make_item
from vlir.annotate.base import AnnotationError
from vlir.annotate.teacher import TeacherAnnotator, TeacherFatalError, merge_stats
from vlir.crops import render_crop
from vlir.records import Box, Look, Think
from vlir.testing.openai_server import Default, Drop, FakeOpenAIServer, Hang, Reply, Status


def chain_json(bbox=(50, 40, 150, 100), answer="stop", label="the sign") -> str:
    return json.dumps({"steps": [{"think": "Find the sign."},
                                 {"look": {"bbox_2d": list(bbox), "label": label}},
                                 {"think": "It reads stop."}], "answer": answer})


@pytest.fixture
def server():
    with FakeOpenAIServer(keep_bodies=True) as srv:
        yield srv


def run(server, tmp_path, items, **kw):
    return annotate(config(server, tmp_path, **kw), items)


def sent_image(body) -> Image.Image:
    url = body["messages"][1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_valid_chain_boxes_map_back_from_the_sent_image(server, tmp_path):
    item = make_item(0)
    server.script(item.sample.question, Reply(chain_json((50, 40, 150, 100))))
    (chain,), stats = run(server, tmp_path, [item], image_max_pixels=100_000)
    body = server.log[0].body
    sent = sent_image(body)
    assert sent.size == (364, 252)  # smart_resize of 640x480 within 100k pixels, multiples of 28
    sx, sy = 640 / 364, 480 / 252
    assert chain.looks[0].box.as_list() == pytest.approx([50 * sx, 40 * sy, 150 * sx, 100 * sy])
    assert chain.looks[0].label == "the sign" and chain.answer == "stop"
    assert isinstance(chain.steps[0], Think) and isinstance(chain.steps[1], Look)
    text = server.log[0].text
    assert item.sample.question in text  # verbatim
    assert "Correct answer: stop" in text and "The image is 364 x 252 pixels" in text
    assert "- [57, 52, 114, 79] stop" in text  # the evidence hint, in sent-image pixels
    assert body["response_format"]["type"] == "json_schema"
    assert "minLength" not in json.dumps(body["response_format"])  # wire schema: strict subset
    assert stats["requests"] == 1 and stats["prompt_tokens"] == 100 and stats["completion_tokens"] == 50


def test_an_image_within_budget_is_padded_not_resampled(server, tmp_path):
    item = make_item(13)
    server.script(item.sample.question, Reply(chain_json((50, 40, 150, 100))))
    (chain,), _ = run(server, tmp_path, [item])
    assert sent_image(server.log[0].body).size == (644, 504)
    assert "The image is 644 x 504 pixels" in server.log[0].text
    assert "- [100, 100, 200, 150] stop" in server.log[0].text
    assert chain.looks[0].box == Box(50, 40, 150, 100)  # sent pixels are original pixels


def test_fenced_answer_with_trailing_text_is_read(server, tmp_path):
    item = make_item(1)
    server.script(item.sample.question, Reply("Sure!\n```json\n" + chain_json() + "\n```\nHope this helps."))
    (chain,), stats = run(server, tmp_path, [item])
    assert chain.answer == "stop" and stats["repairs"] == 0


def test_garbage_is_repaired_once_then_rejected(server, tmp_path):
    bad, fixed = make_item(2), make_item(3)
    server.script(bad.sample.question, Reply("I cannot do that."))
    server.script(fixed.sample.question, Reply("{not json"), Reply(chain_json()))
    (r_bad, r_fixed), stats = run(server, tmp_path, [bad, fixed])
    assert isinstance(r_bad, AnnotationError) and r_bad.reason == "teacher_invalid_json"
    assert server.count(bad.sample.question) == 2  # the first ask and exactly one repair
    repair = [e for e in server.log if bad.sample.question in e.text][1]
    assert "Your reply could not be used: the reply holds no JSON object" in repair.text
    assert repair.body["messages"][2] == {"role": "assistant", "content": "I cannot do that."}
    assert r_fixed.answer == "stop" and server.count(fixed.sample.question) == 2
    assert stats["repairs"] == 2 and stats["failures"] == {"teacher_invalid_json": 1}


def test_schema_violation_is_quoted_back_then_rejected(server, tmp_path):
    item = make_item(4)
    wrong = json.dumps({"steps": [{"look": {"bbox_2d": [1, 2, 3], "label": "x"}}], "answer": "stop"})
    server.script(item.sample.question, Reply(wrong))
    (result,), stats = run(server, tmp_path, [item])
    assert isinstance(result, AnnotationError) and result.reason == "teacher_schema"
    repair = [e for e in server.log if item.sample.question in e.text][1]
    assert "steps/0" in repair.text  # the validation error, quoted back
    assert stats["failures"] == {"teacher_schema": 1}


def test_degenerate_box_is_a_schema_error(server, tmp_path):
    item = make_item(5)
    server.script(item.sample.question, Reply(chain_json((50, 40, 50, 100))))
    (result,), _ = run(server, tmp_path, [item])
    assert isinstance(result, AnnotationError) and result.reason == "teacher_schema"


def test_box_outside_the_image_is_left_to_the_checks(server, tmp_path):
    from vlir.checks import CheckConfig, run_checks

    item = make_item(6)
    server.script(item.sample.question, Reply(chain_json((700, 500, 900, 700))))
    (chain,), _ = run(server, tmp_path, [item])
    assert chain.looks[0].box.x1 > item.sample.width  # mapped back, not silently clipped
    results = {c.name: c.passed for c in run_checks(item.sample, chain, CheckConfig())}
    assert results["box_in_image"] is False


def test_429_honours_retry_after(server, tmp_path, caplog):
    item = make_item(7)
    server.script(item.sample.question, Status(429, retry_after=1), Default())
    with caplog.at_level(logging.INFO, logger="vlir.annotate.teacher_http"):
        (chain,), stats = run(server, tmp_path, [item], backoff_s=0.01)
    assert chain.answer == "stop"
    # the scheduled wait is what the server asked, plus at most 10 % jitter (not the 10 ms backoff);
    # wall-clock time is not asserted (shared machine): bench/teacher_throughput.py measures rates
    [wait] = [float(m.group(1)) for m in map(re.compile(r"retry 1/\d+ in ([0-9.]+)s").search, caplog.messages) if m]
    assert 1.0 <= wait <= 1.1
    assert stats["requests"] == 2 and stats["retries"] == 1 and stats["failures"] == {}


def test_500_is_retried_then_reported(server, tmp_path):
    flaky, dead = make_item(8), make_item(9)
    server.script(flaky.sample.question, Status(500), Status(503), Default())
    server.script(dead.sample.question, Status(500))
    (r_flaky, r_dead), stats = run(server, tmp_path, [flaky, dead], max_retries=2)
    assert r_flaky.answer == "stop" and server.count(flaky.sample.question) == 3
    assert isinstance(r_dead, AnnotationError) and r_dead.reason == "teacher_http_error"
    assert "HTTP 500 after 2 retries" in str(r_dead)
    assert server.count(dead.sample.question) == 3
    assert stats["retries"] == 4 and stats["failures"] == {"teacher_http_error": 1}


def test_a_hung_connection_times_out_and_is_retried(server, tmp_path):
    slow, stuck = make_item(10), make_item(11)
    server.script(slow.sample.question, Hang(30), Default())
    server.script(stuck.sample.question, Hang(30))
    (r_slow, r_stuck), stats = run(server, tmp_path, [slow, stuck], timeout_s=0.5, max_retries=1)
    assert r_slow.answer == "stop"
    assert isinstance(r_stuck, AnnotationError) and r_stuck.reason == "teacher_http_error"
    assert "Timeout" in r_stuck.detail and stats["retries"] == 2


def test_a_dropped_connection_is_retried(server, tmp_path):
    item = make_item(12)
    server.script(item.sample.question, Drop(), Default())
    (chain,), stats = run(server, tmp_path, [item])
    assert chain.answer == "stop" and stats["retries"] == 1


def test_a_rerun_sends_zero_requests(server, tmp_path):
    items = [make_item(i) for i in range(20, 26)]
    server.script(items[0].sample.question, Reply("junk"), Reply(chain_json()))  # a repaired one
    first, s1 = run(server, tmp_path, items)
    sent = server.count()
    assert sent == 7 and s1["cache_hits"] == 0
    second, s2 = run(server, tmp_path, items)
    assert server.count() == sent  # nothing asked again
    assert s2["requests"] == 0 and s2["cache_hits"] == 7 and s2["prompt_tokens"] == 0
    assert second == first
    rows = sqlite3.connect(tmp_path / "cache.sqlite").execute("SELECT kind FROM responses").fetchall()
    assert sorted(r[0] for r in rows) == ["chain"] * 6 + ["repair"]


def test_the_cache_key_follows_the_prompt_inputs(server, tmp_path):
    item = make_item(30)
    run(server, tmp_path, [item])
    run(server, tmp_path, [item], hints=False)  # a different request: asked, not served from cache
    assert server.count() == 2
    assert "Annotated regions" in server.log[0].text and "Annotated regions" not in server.log[1].text
    run(server, tmp_path, [item], model="another-teacher")
    assert server.count() == 3


def test_concurrency_is_bounded_and_used(tmp_path):
    with FakeOpenAIServer(latency_s=0.2) as srv:
        items = [make_item(i) for i in range(40, 56)]
        results, _ = run(srv, tmp_path, items, concurrency=8)
        assert all(r.answer == "stop" for r in results)
        assert srv.max_in_flight == 8  # the rate this gives is bench/teacher_throughput.py's business


def test_servers_without_structured_outputs_get_plain_json(tmp_path):
    with FakeOpenAIServer(structured_outputs=False) as srv:
        results, stats = run(srv, tmp_path, [make_item(i) for i in range(60, 63)], concurrency=1)
        assert all(r.answer == "stop" for r in results)
        assert stats["structured_fallbacks"] == 1
        assert [e.structured for e in srv.log] == [True, False, False, False]


def test_judge_rejects_a_look_it_cannot_see(server, tmp_path):
    good, bad = make_item(70), make_item(71)
    server.script(good.sample.question, Reply(chain_json(label="a red sign")))
    server.script(bad.sample.question, Reply(chain_json(label="a purple giraffe")))
    server.script("purple giraffe", Reply('{"shows": false, "reason": "no giraffe"}'))
    server.script("a red sign", Reply('{"shows": true, "reason": "yes"}'))
    (r_good, r_bad), stats = run(server, tmp_path, [good, bad], judge=True)
    assert r_good.answer == "stop"
    assert isinstance(r_bad, AnnotationError) and r_bad.reason == "judge_region"
    assert "purple giraffe" in r_bad.detail
    assert stats["judge_requests"] == 2 and stats["judge_rejections"] == 1
    judge = next(e for e in server.log if "a red sign" in e.text and "Does this crop" in e.text)
    url = judge.body["messages"][1]["content"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]) == render_crop(good.image, r_good.looks[0].box).png


def test_the_api_key_is_never_written(tmp_path, monkeypatch, caplog):
    sentinel = "sk-SENTINEL-9f8e7d6c5b4a"
    monkeypatch.setenv("VLIR_TEST_KEY", sentinel)
    caplog.set_level(logging.DEBUG)
    with FakeOpenAIServer() as srv:
        items = [make_item(i) for i in range(80, 84)]
        # a careless server that echoes the key in its error messages
        srv.script(items[0].sample.question, Status(500, message=f"bad key {sentinel}"))
        srv.script(items[1].sample.question, Status(400, message=f"bad request for {sentinel}"))
        srv.script(items[2].sample.question, Reply("garbage"))
        annotator = TeacherAnnotator(config(srv, tmp_path, api_key_env="VLIR_TEST_KEY", max_retries=1))
        results = annotator.annotate_many(items)
        stats = annotator.stats()
        provenance = annotator.provenance()
        annotator.close()
        assert all(e.authorization == f"Bearer {sentinel}" for e in srv.log)  # read from the env var
    errors = [r for r in results if isinstance(r, AnnotationError)]
    assert len(errors) == 3
    written = [str(e) + e.detail for e in errors] + [caplog.text, json.dumps(stats), repr(provenance),
                                                     pickle.dumps(annotator).hex()]
    for path in tmp_path.iterdir():
        written.append(path.read_bytes().decode("latin-1"))
    assert all(sentinel not in text for text in written)
    assert sentinel[3:].encode().hex() not in written[-1]


def test_a_refused_key_stops_the_run_without_showing_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VLIR_TEST_KEY", "sk-REFUSED-123456")
    with FakeOpenAIServer() as srv:
        srv.script("sign", Status(401, message="Incorrect API key provided: sk-REFUSED-123456"))
        annotator = TeacherAnnotator(config(srv, tmp_path, api_key_env="VLIR_TEST_KEY"))
        with pytest.raises(TeacherFatalError) as info:
            annotator.annotate_many([make_item(i) for i in range(3)])
        annotator.close()
    assert "VLIR_TEST_KEY" in str(info.value) and "sk-REFUSED" not in str(info.value)


def test_annotate_raises_and_the_annotator_survives_pickling(server, tmp_path):
    item = make_item(90)
    server.script(item.sample.question, Reply("nope"))
    annotator = TeacherAnnotator(config(server, tmp_path))
    with pytest.raises(AnnotationError):
        annotator.annotate(item)
    clone = pickle.loads(pickle.dumps(annotator))  # what a worker process receives
    assert clone.annotate(make_item(91)).answer == "stop"
    assert clone.provenance().annotator == "teacher" and clone.provenance().teacher_model == "fake-teacher"
    assert len(clone.provenance().prompt_hash) == 16
    clone.close()
    annotator.close()


def test_merge_stats_sums_workers():
    a = {"requests": 3, "retries": 1, "failures": {"teacher_schema": 1}}
    b = {"requests": 2, "cache_hits": 4, "failures": {"teacher_schema": 2, "judge_region": 1}}
    merged = merge_stats(a, b)
    assert merged["requests"] == 5 and merged["cache_hits"] == 4 and merged["retries"] == 1
    assert merged["failures"] == {"judge_region": 1, "teacher_schema": 3}
    a["endpoints"] = {"http://a/v1": {"requests": 2, "answered": 2, "latency_s": 0.5}}
    b["endpoints"] = {"http://a/v1": {"requests": 1, "failures": 1, "benched": 1},
                      "http://b/v1": {"requests": 1, "answered": 1, "latency_s": 0.25}}
    assert merge_stats(a, b)["endpoints"] == {
        "http://a/v1": {"requests": 3, "answered": 2, "failures": 1, "benched": 1, "latency_s": 0.5},
        "http://b/v1": {"requests": 1, "answered": 1, "failures": 0, "benched": 0, "latency_s": 0.25}}


def test_annotate_stream_keeps_order_and_reads_input_lazily(tmp_path):
    consumed = []

    def items():
        for i in range(100, 112):
            consumed.append(i)
            yield make_item(i, answers=(f"answer {i}",))

    with FakeOpenAIServer(latency_s=0.05) as srv:
        annotator = TeacherAnnotator(config(srv, tmp_path, concurrency=2))
        stream = annotator.annotate_stream(items(), window=4)
        first = next(stream)
        assert len(consumed) <= 5  # only the window is read ahead
        rest = list(stream)
        annotator.close()
        assert srv.max_in_flight <= 2
    pairs = [first] + rest
    assert [item.sample.answers[0] for item, _ in pairs] == [f"answer {i}" for i in range(100, 112)]
    assert [r.answer for _, r in pairs] == [f"answer {i}" for i in range(100, 112)]
    assert srv.count() == 12

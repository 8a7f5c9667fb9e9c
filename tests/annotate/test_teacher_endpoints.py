"""The teacher across several endpoints (issue 16.2), against loopback servers: each request goes to
the endpoint with the fewest in flight; an endpoint that refuses connections or answers a 5xx
streak is benched and its requests go elsewhere, then probed back; every endpoint counts its
requests, answers, failures and latency into the manifest. A build over three servers, one killed
midway, loses nothing, asks nothing twice and accounts for every record."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.annotate.teacher_support import annotate, config, make_item
from vlir.annotate.base import AnnotationError, AnnotatorUnavailable
from vlir.annotate.teacher import TeacherAnnotator
from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
from vlir.sources.registry import get_source
from vlir.testing.openai_server import FakeOpenAIServer, Status, refused_url
from vlir.corpus.validate import validate_output


@pytest.fixture
def servers():
    with FakeOpenAIServer(latency_s=0.03) as a, FakeOpenAIServer(latency_s=0.03) as b, \
            FakeOpenAIServer(latency_s=0.03) as c:
        yield a, b, c


def test_requests_go_to_the_least_busy_endpoint_and_each_is_counted(servers, tmp_path):
    urls = [s.base_url for s in servers]
    results, stats = annotate(config(servers[0], tmp_path, base_url=urls, concurrency=6),
                              [make_item(i) for i in range(24)])
    assert not any(isinstance(r, AnnotationError) for r in results)
    per = stats["endpoints"]
    assert list(per) == urls
    for srv, url in zip(servers, urls):
        # 6 in flight over 3 endpoints, each sent to the least busy: never more than 2 at one
        assert 0 < srv.max_in_flight <= 2
        assert per[url]["requests"] == per[url]["answered"] == srv.count() == srv.answered()
        assert per[url]["failures"] == per[url]["benched"] == 0 and per[url]["latency_s"] > 0
    assert sum(e["requests"] for e in per.values()) == stats["requests"] == 24


def test_a_refused_endpoint_is_benched_and_its_requests_go_elsewhere(servers, tmp_path):
    dead = refused_url()
    urls = [dead, servers[0].base_url, servers[1].base_url]
    cfg = config(servers[0], tmp_path, base_url=urls, concurrency=3, breaker_failures=2, max_retries=2)
    results, stats = annotate(cfg, [make_item(i) for i in range(12)])
    assert not any(isinstance(r, AnnotationError) for r in results)  # every sample answered
    assert stats["unavailable"] == 0 and stats["breaker_fast_fails"] == 0
    down = stats["endpoints"][dead]
    assert down["answered"] == 0 and down["benched"] == 1
    assert 2 <= down["failures"] == down["requests"] <= 2 + 3  # the breaker's 2, and what was already on its way
    assert servers[0].answered() + servers[1].answered() == 12
    assert stats["retries"] == down["failures"]  # each failure was retried once, on a live endpoint


def test_a_5xx_streak_benches_an_endpoint_and_a_recovered_one_is_probed_back(servers, tmp_path):
    sick, well, _ = servers
    sick.script("", Status(500))
    cfg = config(sick, tmp_path, base_url=[sick.base_url, well.base_url], concurrency=2,
                 breaker_failures=3, bench_s=0.3)
    annotator = TeacherAnnotator(cfg)
    try:
        first = annotator.annotate_many([make_item(i) for i in range(10)])
        assert not any(isinstance(r, AnnotationError) for r in first)
        benched = annotator.stats()["endpoints"][sick.base_url]
        assert benched["benched"] == 1 and benched["answered"] == 0 and sick.count() <= 3 + 2
        sick.unscript()  # the outage ends; once the bench is over, a probe finds it well
        time.sleep(0.4)
        second = annotator.annotate_many([make_item(i) for i in range(10, 20)])
        assert not any(isinstance(r, AnnotationError) for r in second)
        back = annotator.stats()["endpoints"][sick.base_url]
    finally:
        annotator.close()
    assert back["benched"] == 1 and back["answered"] == sick.answered() > 0


def test_every_endpoint_down_fails_fast_and_the_samples_wait(servers, tmp_path):
    cfg = config(servers[0], tmp_path, base_url=[refused_url(), refused_url()], concurrency=2,
                 breaker_failures=2, max_retries=3)
    results, stats = annotate(cfg, [make_item(i) for i in range(10)])
    assert all(isinstance(r, AnnotatorUnavailable) for r in results)
    assert sum("all 2 endpoints down, not asked" in r.detail for r in results) >= 10 - 2
    assert stats["requests"] <= 2 * 2 + 2 and all(e["benched"] == 1 for e in stats["endpoints"].values())


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tree") / "textvqa"
    get_source("textvqa").write_sample_tree(root, 16, 0)
    return root


def wait_until(predicate, what: str, timeout: float = 900) -> None:  # a hang guard only
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.mark.slow
def test_a_build_over_three_endpoints_survives_one_killed_midway(servers, tree, tmp_path):
    """The victim answers a few requests, then dies with requests parked at it: those fail over
    to the other two. Every sample gets a verdict, no request is answered twice, the manifest's
    per-endpoint counts are the servers' own, and a rerun asks nothing."""
    victim = servers[1]
    urls = [s.base_url for s in servers]
    victim_url = urls[1]
    jobs = [Job("textvqa", split, str(tree)) for split in ("train", "val")]
    cfg = BuildConfig(annotator="teacher", tasks=2, teacher={
        "base_url": urls, "model": "fake-teacher", "concurrency": 4, "max_retries": 2, "backoff_s": 0.01,
        "breaker_failures": 2, "timeout_s": 10})
    out, result = tmp_path / "out", {}

    def build() -> None:
        try:
            result["manifest"] = run_build(cfg, jobs, out, show_progress=False)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            result["error"] = exc

    thread = threading.Thread(target=build)
    thread.start()
    wait_until(lambda: victim.answered() >= 2 or not thread.is_alive(), "the victim's first answers")
    victim.hold()
    wait_until(lambda: victim.waiting() >= 1 or not thread.is_alive(), "a request parked at the victim")
    assert thread.is_alive(), "the build ended before the victim could be killed"
    victim.kill()
    thread.join(300)
    assert "error" not in result, result.get("error")
    manifest = result["manifest"]

    total = sum(1 for split in ("train", "val") for _ in get_source("textvqa").iter_samples(tree, split))
    splits = manifest["splits"].values()
    assert sum(s["accepted"] + s["rejected"] for s in splits) == total
    assert not any("teacher_http_error" in s["rejected_by_reason"] for s in splits)
    answered = sum((s.answered_keys() for s in servers), Counter())
    assert max(answered.values()) == 1  # nothing asked twice, the victim's answers included
    stats = manifest["annotator_stats"]
    assert sorted(stats["endpoints"]) == sorted(urls) and stats["unavailable"] == 0
    for srv, url in zip(servers, urls):
        assert stats["endpoints"][url]["answered"] == srv.answered() > 0
    assert stats["endpoints"][victim_url]["failures"] >= 1  # the parked requests failed over
    assert sum(e["requests"] for e in stats["endpoints"].values()) == stats["requests"]
    assert validate_output(out).ok

    asked = sum(s.count() for s in servers)
    assert run_build(cfg, jobs, out, show_progress=False) == manifest  # every task done: nothing to ask
    assert sum(s.count() for s in servers) == asked


@pytest.mark.slow
def test_cli_base_url_repeats(servers, tree, tmp_path):
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "vlir", "build", "--source", "textvqa", "--root", str(tree),
                        "--split", "val", "--out", str(out), "--annotator", "teacher", "--model", "fake-teacher",
                        "--base-url", servers[0].base_url, "--base-url", servers[2].base_url, "--tasks", "1",
                        "--concurrency", "4", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "build.json").read_text())["config"]["teacher"]["base_url"] == \
        [servers[0].base_url, servers[2].base_url]
    endpoints = json.loads((out / "manifest.json").read_text())["annotator_stats"]["endpoints"]
    assert endpoints[servers[0].base_url]["answered"] == servers[0].answered() > 0
    assert endpoints[servers[2].base_url]["answered"] == servers[2].answered() > 0
    assert servers[1].count() == 0

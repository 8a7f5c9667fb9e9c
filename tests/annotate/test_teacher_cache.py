"""The teacher's SQLite cache: round trip, first writer wins, several processes at once."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3

from vlir.llm.cache import AnswerCache as TeacherCache, CachedAnswer, cache_key


def _put(key, cache):
    cache.put(key, model="m", prompt_hash="p", request_hash="r", image_sha256="i", kind="chain",
              answer=CachedAnswer(f"answer {key}", 3, 4))


def _writer(path: str, worker: int, n: int) -> None:
    cache = TeacherCache(path)
    for i in range(n):
        _put(f"{worker}-{i}", cache)
        _put(f"shared-{i}", cache)  # every process writes these too
    cache.close()


def test_round_trip_and_first_writer_wins(tmp_path):
    cache = TeacherCache(tmp_path / "sub" / "c.sqlite")
    key = cache_key("m", "p", "r", "i")
    assert cache.get(key) is None
    cache.put(key, model="m", prompt_hash="p", request_hash="r", image_sha256="i", kind="chain",
              answer=CachedAnswer("one", 1, 2))
    cache.put(key, model="m", prompt_hash="p", request_hash="r", image_sha256="i", kind="chain",
              answer=CachedAnswer("two", 5, 6))
    assert cache.get(key) == CachedAnswer("one", 1, 2) and len(cache) == 1
    assert cache_key("m", "p", "r", "i") != cache_key("m", "p", "ri", "")
    mode = sqlite3.connect(tmp_path / "sub" / "c.sqlite").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    cache.close()


def test_several_processes_share_one_file(tmp_path):
    path = str(tmp_path / "c.sqlite")
    TeacherCache(path).close()
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 150)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    cache = TeacherCache(path)
    assert len(cache) == 3 * 150 + 150
    assert cache.get("2-149") == CachedAnswer("answer 2-149", 3, 4)
    cache.close()

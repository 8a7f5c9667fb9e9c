"""A build reads each (source, split) once (issue 12.5): the parse work over all tasks is one read
of the source, each task gets exactly the items the old filter (stream everything, keep the ids
that hash to the task) handed it, in the same order, and the spools leave with the build."""

from __future__ import annotations

import json
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest

import vlir.sources.gqa as gqa
from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.build_plan import task_of
from vlir.corpus.build_plan import read_source, source_reads, source_stats, task_counts, task_items
from vlir.corpus.executors.local import run_build
from vlir.sources.registry import get_source
from tests.sources.conftest import pristine  # noqa: F401  (a fixture)


SRC = get_source("gqa")  # `pristine` writes its sample tree


@pytest.fixture
def gqa_root(pristine) -> Path:
    return pristine


def questions(root: Path) -> int:
    return len(json.loads((root / "questions" / "val_balanced_questions.json").read_text()))


def count_gqa_parsing(monkeypatch) -> Counter:
    """Counts the question records the GQA adapter streams and the scene-graph indexes it builds."""
    counts: Counter = Counter()
    items, build = gqa.iter_object_spans, gqa.SceneGraphIndex.build

    def counting_items(path, *args, **kwargs):
        for item in items(path, *args, **kwargs):
            counts["records"] += 1
            yield item

    def counting_build(*args, **kwargs):
        counts["scene_graph_indexes"] += 1
        return build(*args, **kwargs)

    monkeypatch.setattr(gqa, "iter_object_spans", counting_items)
    monkeypatch.setattr(gqa.SceneGraphIndex, "build", counting_build)
    return counts


@pytest.mark.parametrize("tasks", [1, 4])
def test_a_build_parses_each_question_once_whatever_the_tasks(gqa_root, tmp_path, monkeypatch, tasks):
    counts = count_gqa_parsing(monkeypatch)
    manifest = run_build(BuildConfig(tasks=tasks), [Job("gqa", "val", str(gqa_root))], tmp_path / "out",
                         show_progress=False)
    assert counts == {"records": questions(gqa_root), "scene_graph_indexes": 1}  # 4 tasks parsed 4x
    split = manifest["splits"]["gqa/val"]
    assert split["accepted"] + split["rejected"] == questions(gqa_root)
    assert not (tmp_path / "out" / ".vlir" / "tmp").exists()  # the spools went with the build


def test_a_resumed_build_reads_the_source_once_for_its_unfinished_tasks(gqa_root, tmp_path, monkeypatch):
    jobs, out = [Job("gqa", "val", str(gqa_root))], tmp_path / "out"
    run_build(BuildConfig(tasks=3), jobs, out, show_progress=False)
    reference = (out / "manifest.json").read_bytes()
    for task in (0, 2):  # as if killed before these tasks finished
        (out / ".vlir" / "gqa" / "val" / "completions" / f"{task:05d}").unlink()
    (out / "manifest.json").unlink()
    counts = count_gqa_parsing(monkeypatch)
    run_build(BuildConfig(tasks=3), jobs, out, show_progress=False)
    assert counts["scene_graph_indexes"] == 1 and counts["records"] == questions(gqa_root)
    assert (out / "manifest.json").read_bytes() == reference


@pytest.mark.parametrize("limit", [None, 5])
def test_each_task_gets_what_the_filter_gave_it_in_order(gqa_root, tmp_path, limit):
    cfg, job = BuildConfig(tasks=3, limit=limit), Job("gqa", "val", str(gqa_root))
    want_stats: Counter = Counter()  # what the old filter's stream counted (it stopped after `limit`)
    stream = list(islice(get_source("gqa").iter_samples(gqa_root, "val", stats=want_stats), limit))
    [read] = source_reads([(job, 0), (job, 1), (job, 2)], tmp_path)
    assert read_source(cfg, read) == len(stream)
    for task in range(3):
        assert list(task_items(read.folder, task)) == [s for s in stream if task_of(s.id, 3) == task]
    # the per-task counts the progress bar's total (its ETA) is made of
    assert task_counts(read.folder) == {t: sum(task_of(s.id, 3) == t for s in stream) for t in range(3)}
    assert source_stats(read.folder) == want_stats
    assert read_source(cfg, read) == 0  # a second attempt (a Ray retry) finds the read done


def test_a_task_without_its_read_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="the source was not read"):
        list(task_items(tmp_path / "nowhere", 0))


def test_build_bar_total_counts_the_records_of_the_tasks_to_run(gqa_root, tmp_path):
    """The build's bar gets a total (so tqdm shows an ETA): the items of the tasks still to run."""
    from vlir.corpus.executors.common import Progress

    cfg, job = BuildConfig(tasks=3), Job("gqa", "val", str(gqa_root))
    [read] = source_reads([(job, 0), (job, 2)], tmp_path)  # task 1 done earlier
    read_source(cfg, read)
    progress = Progress(2, show=True)
    progress.expect(read)
    ids = [s.id for s in get_source("gqa").iter_samples(gqa_root, "val")]
    assert progress.bar.total == sum(task_of(i, 3) in (0, 2) for i in ids) > 0
    progress.close()


def test_a_places_spool_reads_back_every_place_across_files_jumps_and_chunks(tmp_path, monkeypatch):
    import vlir.corpus.build_plan as plan

    monkeypatch.setattr(plan, "FLUSH_ITEMS", 3)  # escapes and pairs cut across chunk boundaries
    places = [(0, 17, 5), (0, 40, 9), (0, 40 + (1 << 33), 7), (1, 3, 2), (1, 9, 1), (0, 2, 4),
              (2, (1 << 40) + 5, 11), (2, (1 << 40) + 6, 1)]
    spool = plan._PlaceSpool(tmp_path, (0, 1))
    for place in places:
        spool.add(0, None, place)
        spool.add(1, None, (0, place[1] % 1000, 1))  # another task's places interleave
        spool.add(7, None, place)  # a task not of this read: ignored
    spool.flush()
    with open(tmp_path / "00000.places", "rb") as fh:
        assert list(plan._places(fh)) == places
    with open(tmp_path / "00001.places", "rb") as fh:
        assert list(plan._places(fh)) == [(0, p[1] % 1000, 1) for p in places]
    assert (tmp_path / "00000.places").stat().st_size < 8 * 3 * len(places)  # not three int64 a place


def test_gqa_spools_hold_places_not_samples(gqa_root, tmp_path):
    cfg, job = BuildConfig(tasks=2), Job("gqa", "val", str(gqa_root))
    [read] = source_reads([(job, 0), (job, 1)], tmp_path)
    read_source(cfg, read)
    spools = sorted(p.name for p in Path(read.folder).iterdir())
    assert spools == ["00000.places", "00001.places", "counts.json", "reading.pkl", "source_stats.json"]
    per_item = sum((Path(read.folder) / s).stat().st_size for s in spools[:2]) / questions(gqa_root)
    assert per_item <= 16  # a delta and a length, and a file's start once per task

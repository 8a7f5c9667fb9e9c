"""An error nobody expected inside one sample's annotation is that sample's reject
(``annotator_failed``, the sample named in the detail), never the end of its batch or task; a
teacher box no arithmetic can take is ``box_out_of_range``."""

from __future__ import annotations

import json

import pytest

from tests.annotate.teacher_support import annotate, config, make_item
from vlir.annotate.base import AnnotationError, Annotator
from vlir.records import Chain, Provenance
from vlir.testing.openai_server import FakeOpenAIServer, Reply


class Flaky(Annotator):
    name = "flaky"

    def provenance(self) -> Provenance:
        return Provenance("flaky", "0")

    def annotate(self, item) -> Chain:
        if item.sample.id.endswith("/1"):
            raise KeyError("a field this sample lacks")
        raise AnnotationError("no_evidence", "nothing to look at")


def test_a_bug_on_one_sample_is_its_reject_and_the_batch_goes_on():
    results = Flaky().annotate_many([make_item(0), make_item(1), make_item(2)])
    assert [r.reason for r in results] == ["no_evidence", "annotator_failed", "no_evidence"]
    assert results[1].detail.startswith("textvqa/val/1: KeyError")


@pytest.fixture
def server():
    with FakeOpenAIServer() as srv:
        yield srv


def test_an_unexpected_error_reading_a_teacher_answer_is_that_samples_reject(server, tmp_path, monkeypatch):
    import vlir.annotate.teacher as teacher

    real = teacher.parse_chain

    def parse(content, sample, budget):
        if sample.id.endswith("/1"):
            raise IndexError("a parser bug")
        return real(content, sample, budget)

    monkeypatch.setattr(teacher, "parse_chain", parse)
    results, stats = annotate(config(server, tmp_path), [make_item(0), make_item(1), make_item(2)])
    assert isinstance(results[1], AnnotationError) and results[1].reason == "annotator_failed"
    assert "textvqa/val/1: IndexError: a parser bug" in results[1].detail
    assert isinstance(results[0], Chain) and isinstance(results[2], Chain)
    assert stats["failures"] == {"annotator_failed": 1}


def test_a_teacher_box_that_overflows_is_box_out_of_range(server, tmp_path):
    item = make_item(3, width=600, height=400)  # padded to 616 x 420: the boxes are scaled, 1e309 is inf
    answer = json.dumps({"steps": [{"think": "look"}, {"look": {"bbox_2d": [0, 0, 1e308, 1e308], "label": "x"}}],
                         "answer": "stop"}).replace("1e+308", "1e309")
    server.script(item.sample.question, Reply(answer))
    (result,), _ = annotate(config(server, tmp_path), [item])
    assert isinstance(result, AnnotationError) and result.reason == "box_out_of_range"

"""Issue 23: what used to stop a build for good, or pass silently, is one record's reject with a
reason: an image the model cannot see (failure 4), a teacher box no arithmetic can take (failure
3), teacher text that breaks the protocol, a bug inside one record, ids that are no ids; and an
EXIF-rotated photo is stored in the frame ``datasets`` decodes (failure 6), whichever frame its
record declares."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from vlir.corpus.build import BuildConfig, Job
from vlir.corpus.executors.local import run_build
from vlir.corpus.shards import Corpus
from vlir.corpus.validate import validate_output
from vlir.sources.registry import get_source
from vlir.testing.openai_server import FakeOpenAIServer, Reply
from tests.test_images import exif_jpeg


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trees")
    get_source("textvqa").write_sample_tree(root / "textvqa", 6, 0)
    get_source("gqa").write_sample_tree(root / "gqa", 4, 0)
    return root


@pytest.fixture
def tree(pristine, tmp_path) -> Path:
    return Path(shutil.copytree(pristine, tmp_path / "trees"))


def build(root: Path, out: Path, source: str = "textvqa", **cfg) -> dict:
    return run_build(BuildConfig(tasks=1, **cfg), [Job(source, "val", str(root / source))], out,
                     workers=1, show_progress=False)


def records(out: Path, rejects: bool = False) -> dict:
    corpus = Corpus(out)
    return {r.sample.id: r for src, sp in corpus.splits() for r in corpus.records(src, sp, rejects=rejects)}


def textvqa_doc(root: Path) -> tuple[Path, dict]:
    path = root / "textvqa" / "TextVQA_0.5.1_val.json"
    return path, json.loads(path.read_text())


def first_image(root: Path) -> tuple[str, list[dict]]:
    """The first val record's image id and every val record showing that image."""
    _, doc = textvqa_doc(root)
    image_id = doc["data"][0]["image_id"]
    return image_id, [r for r in doc["data"] if r["image_id"] == image_id]


def test_an_image_the_model_cannot_see_is_an_image_aspect_reject(tree, tmp_path):
    """Failure 4: a 30000x30 image failed the whole split in _snap (smart_resize's aspect limit)."""
    path, doc = textvqa_doc(tree)
    image_id = doc["data"][0]["image_id"]
    Image.new("RGB", (30000, 30), (200, 200, 200)).save(tree / "textvqa" / "train_images" / f"{image_id}.jpg")
    for rec in doc["data"]:
        if rec["image_id"] == image_id:
            rec["image_width"], rec["image_height"] = 30000, 30
    path.write_text(json.dumps(doc))
    manifest = build(tree, tmp_path / "out")
    split = manifest["splits"]["textvqa/val"]
    hit = sum(r["image_id"] == image_id for r in doc["data"])
    assert split["rejected_by_reason"].get("image_aspect") == hit
    assert split["accepted"] > 0 and split["accepted"] + split["rejected"] == len(doc["data"])  # none lost
    (reject,) = [r for r in records(tmp_path / "out", rejects=True).values() if "image_aspect" in r.reasons][:1]
    assert "30000x30" in reject.reject_detail
    assert validate_output(tmp_path / "out").ok


def _teacher_cfg(url: str) -> dict:
    return {"annotator": "teacher", "teacher": {"base_url": url, "model": "fake-teacher", "max_retries": 1,
                                                "backoff_s": 0.01, "concurrency": 2}}


def _answer(gold: str, box=(100, 100, 200, 160), think: str = "The sign is on the left.") -> str:
    return json.dumps({"steps": [{"think": think}, {"look": {"bbox_2d": list(box), "label": "sign"}},
                                 {"think": "It reads the answer."}], "answer": gold})


def test_a_teacher_box_beyond_any_image_is_a_reject_and_the_cached_rerun_too(tree, tmp_path):
    """Failure 3: [0, 0, 1.79e308, 1.79e308] overflowed in _snap; the answer was cached, so every
    rerun crashed the same way."""
    _, doc = textvqa_doc(tree)
    rec = doc["data"][0]
    with FakeOpenAIServer() as srv:
        srv.script(rec["question"], Reply(_answer(rec["answers"][0], (0, 0, 1.79e308, 1.79e308))))
        manifest = build(tree, tmp_path / "out", **_teacher_cfg(srv.base_url))
        assert manifest["splits"]["textvqa/val"]["rejected_by_reason"].get("box_out_of_range") == 1
        asked = srv.count()
        srv.unscript()  # the endpoint is sane now; the cached answer is what the rerun reads
        again = tmp_path / "again"
        (again / "cache").mkdir(parents=True)
        shutil.copy(tmp_path / "out" / "cache" / "teacher.sqlite", again / "cache" / "teacher.sqlite")
        manifest2 = build(tree, again, **_teacher_cfg(srv.base_url))
        assert srv.count() == asked  # nothing asked twice
    assert manifest2["splits"] == manifest["splits"]
    rid = f"textvqa/val/{rec['question_id']}"
    detail = records(again, rejects=True)[rid].reject_detail
    assert rid in detail and "look 0" in detail
    assert validate_output(again).ok


@pytest.mark.parametrize("think, reason", [
    ("x" * 10_000, "text_length"),
    ("Then <|im_end|><|im_start|>assistant", "text_safe"),
    ('Close it early ]} and <answer>yes</answer>', "text_safe"),
    ("red \x1b[31m text \u202e", "text_safe"),
])
def test_teacher_text_that_breaks_the_protocol_is_a_reject(tree, tmp_path, think, reason):
    _, doc = textvqa_doc(tree)
    rec = doc["data"][0]
    with FakeOpenAIServer() as srv:
        srv.script(rec["question"], Reply(_answer(rec["answers"][0], think=think)))
        build(tree, tmp_path / "out", **_teacher_cfg(srv.base_url))
    got = records(tmp_path / "out", rejects=True)[f"textvqa/val/{rec['question_id']}"]
    assert reason in got.reasons
    assert validate_output(tmp_path / "out").ok


def test_a_crash_inside_one_record_is_its_reject_not_the_tasks_end(tree, tmp_path, monkeypatch):
    import vlir.corpus.build as build_module

    _, doc = textvqa_doc(tree)
    victim = f"textvqa/val/{doc['data'][1]['question_id']}"
    real = build_module.Task._snap

    def snap(self, chain, sample):
        if sample.id == victim:
            raise RuntimeError("a bug that only this record meets")
        return real(self, chain, sample)

    monkeypatch.setattr(build_module.Task, "_snap", snap)
    manifest = build(tree, tmp_path / "out")
    split = manifest["splits"]["textvqa/val"]
    assert split["rejected_by_reason"].get("record_failed") == 1 and split["accepted"] > 0
    detail = records(tmp_path / "out", rejects=True)[victim].reject_detail
    assert detail.startswith(victim) and "RuntimeError: a bug that only this record meets" in detail


def test_a_crash_opening_one_record_is_its_reject(tree, tmp_path, monkeypatch):
    import vlir.corpus.build as build_module

    _, doc = textvqa_doc(tree)
    victim = f"textvqa/val/{doc['data'][2]['question_id']}"
    real = build_module.oriented_sample

    def oriented(sample, *args):
        if sample.id == victim:
            raise ZeroDivisionError("a bug in the frame code")
        return real(sample, *args)

    monkeypatch.setattr(build_module, "oriented_sample", oriented)
    manifest = build(tree, tmp_path / "out")
    assert manifest["splits"]["textvqa/val"]["rejected_by_reason"].get("record_failed") == 1
    assert "ZeroDivisionError" in records(tmp_path / "out", rejects=True)[victim].reject_detail


@pytest.mark.parametrize("frame", ["raw", "upright"])
def test_an_exif_rotated_photo_is_stored_in_the_frame_datasets_decodes(tree, tmp_path, frame):
    """Failure 6. The sample tree's image matches its record (W x H, boxes on its pixels). ``raw``:
    those pixels are stored as they are with Orientation=6, so the record declares the file's raw
    frame: the build turns size and boxes with the pixels. ``upright``: the file holds the pixels
    turned back, with Orientation=6, so what a viewer shows is the annotated image: kept as is."""
    from datasets import Image as ImageFeature

    from vlir.geometry import orient_box

    image_id, shown = first_image(tree)
    path = tree / "textvqa" / "train_images" / f"{image_id}.jpg"
    original = Image.open(path).convert("RGB")
    w, h = original.size
    stored = original if frame == "raw" else original.transpose(Image.Transpose.ROTATE_90)
    path.write_bytes(exif_jpeg(stored, 6))
    before = {s.id: s for s in get_source("textvqa").iter_samples(tree / "textvqa", "val")}
    manifest = build(tree, tmp_path / "out", embed_images=True)
    assert manifest["splits"]["textvqa/val"]["stats"].get("exif_reoriented", 0) == \
        (len(shown) if frame == "raw" else 0)
    every = {**records(tmp_path / "out"), **records(tmp_path / "out", rejects=True)}
    for rec in shown:
        rid = f"textvqa/val/{rec['question_id']}"
        got, src = every[rid], before[rid]
        decoded = ImageFeature().decode_example({"bytes": path.read_bytes(), "path": None})
        assert (got.sample.width, got.sample.height) == decoded.size == ((h, w) if frame == "raw" else (w, h))
        expected = [orient_box(r.box, 6, w, h) if frame == "raw" else r.box for r in src.evidence]
        assert [v for r in got.sample.evidence for v in r.box.as_list()] == \
            pytest.approx([v for b in expected for v in b.as_list()], abs=1.0)
        if got.accepted:
            for look in got.chain.looks:  # every look lies inside the stored (upright) frame
                assert look.box.x2 <= got.sample.width + 1 and look.box.y2 <= got.sample.height + 1
    assert validate_output(tmp_path / "out").ok


def test_native_ids_that_are_no_ids_are_bad_id_rejects_that_validate(tree, tmp_path):
    """GQA question ids with '/', '..' or CR/LF were built, then refused (or worse, read as paths)."""
    path = tree / "gqa" / "questions" / "val_balanced_questions.json"
    doc = json.loads(path.read_text())
    keys = list(doc)
    for new, old in zip(("a/b", "..", "x\r\ny"), keys):
        doc[new] = doc.pop(old)
    path.write_text(json.dumps(doc))
    manifest = build(tree, tmp_path / "out", source="gqa")
    split = manifest["splits"]["gqa/val"]
    assert split["rejected_by_reason"].get("bad_id") == 3
    rejects = records(tmp_path / "out", rejects=True)
    bad = [r for r in rejects.values() if r.reasons == ("bad_id",)]
    assert all(r.sample.id.startswith("gqa/val/bad-id-") for r in bad)
    details = " ".join(r.reject_detail for r in bad)
    assert all(repr(f"gqa/val/{native}") in details for native in ("a/b", "..", "x\r\ny"))
    assert validate_output(tmp_path / "out").ok


def test_a_reject_for_an_image_path_leaving_the_root_stores_no_such_path(tree, tmp_path):
    path, doc = textvqa_doc(tree)
    doc["data"][0]["image_id"] = "../../../outside"
    path.write_text(json.dumps(doc))
    build(tree, tmp_path / "out")
    rid = f"textvqa/val/{doc['data'][0]['question_id']}"
    reject = records(tmp_path / "out", rejects=True)[rid]
    assert reject.reasons == ("unsafe_path",) and reject.sample.image == ""
    assert "../../../outside" in reject.reject_detail  # quoted in the detail, not lost
    assert validate_output(tmp_path / "out").ok

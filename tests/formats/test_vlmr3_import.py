"""``import_records``: the authors' SFT records back into validated vlir shards. A round trip
export -> import gives the same records; unreadable records are rejects with reasons; every crop
file is compared with vlir's own crop of the same box."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from vlir import geometry
from vlir.formats.vlmr3 import AUTHORS_SFT_BUDGET, DATA_FILE, ExportConfig, export_corpus
from vlir.formats.vlmr3_import import ImportConfig, ImportInputError, import_records
from vlir.records import Look, Think
from vlir.corpus.shards import Corpus
from vlir.corpus.validate import validate_output
from tests.conftest import make_image


def _by_id(out: Path, rejects: bool = False) -> dict:
    corpus = Corpus(out)
    return {r.sample.id: r for src, sp in corpus.splits() for r in corpus.records(src, sp, rejects=rejects)}


def _assert_same_records(original: Path, back: Path) -> int:
    """Question, answers, answer, think texts equal; look boxes within one model pixel."""
    before, after = _by_id(original), _by_id(back)
    assert sorted(after) == sorted(before)
    for rid, old in before.items():
        new = after[rid]
        assert (new.sample.source, new.sample.split) == (old.sample.source, old.sample.split)
        assert new.sample.question == old.sample.question
        assert new.sample.answers == old.sample.answers and new.chain.answer == old.chain.answer
        assert [s.text for s in new.chain.steps if isinstance(s, Think)] == \
               [s.text for s in old.chain.steps if isinstance(s, Think)]
        assert [type(s) for s in new.chain.steps] == [type(s) for s in old.chain.steps]
        w, h = old.sample.width, old.sample.height
        assert (new.sample.width, new.sample.height) == (w, h)
        mw, mh = geometry.model_size(w, h, AUTHORS_SFT_BUDGET)
        for a, b in zip(old.chain.looks, new.chain.looks):
            for u, v, scale in zip(a.box.as_list(), b.box.as_list(), (mw / w, mh / h) * 2):
                assert abs(u - v) * scale <= 1.0, (rid, a.box, b.box)
        assert len(new.crops) == len(old.crops)
    return len(before)


def _splits(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())["splits"]


def test_round_trip_of_a_built_corpus(built_corpus, tmp_path):
    export_corpus(built_corpus, tmp_path / "dest")
    manifest = import_records(tmp_path / "dest", tmp_path / "back")
    report = validate_output(tmp_path / "back")
    assert report.ok, report.problems
    assert _assert_same_records(built_corpus, tmp_path / "back") >= 12
    # same split folders and accepted counts as the build; no rejects
    built = _splits(built_corpus)
    assert {k: v["accepted"] for k, v in manifest["splits"].items()} == {k: v["accepted"] for k, v in built.items()}
    assert all(v["rejected"] == 0 for v in manifest["splits"].values())
    # the build snapped looks to the model grid: boxes come back exactly, crops are vlir's own
    before, after = _by_id(built_corpus), _by_id(tmp_path / "back")
    for rid, rec in after.items():
        assert [lk.box for lk in rec.chain.looks] == [lk.box for lk in before[rid].chain.looks]
        assert [c.png for c in rec.crops] == [c.png for c in before[rid].crops]
        assert rec.checks[-1].name == "crop_match" and rec.checks[-1].passed and rec.checks[-1].value == 0.0
    diff = manifest["annotator_stats"]["vlmr3_import"]["crop_diff"]
    assert set(diff) == {rid for rid, r in after.items() if r.crops}
    assert all(c["same_size"] == 1 and c["mean_abs_diff"] == 0 for d in diff.values() for c in d.values())


def test_round_trip_with_referenced_images_and_off_grid_boxes(small_corpus, tmp_path):
    export_corpus(small_corpus, tmp_path / "dest", ExportConfig(images="reference"))
    import_records(tmp_path / "dest", tmp_path / "back", ImportConfig(image_root=str(tmp_path.parent)))
    assert validate_output(tmp_path / "back").ok
    assert _assert_same_records(small_corpus, tmp_path / "back") == 6
    # fixture boxes are not on the model grid: vlir's crop of the recovered box differs a little,
    # and the manifest says so per record
    diff = json.loads((tmp_path / "back" / "manifest.json").read_text())["annotator_stats"]["vlmr3_import"]["crop_diff"]
    assert len(diff) == 6 and all(0 < c["mean_abs_diff"] < 20 for d in diff.values() for c in d.values())
    corpus = Corpus(tmp_path / "back")
    rec = next(corpus.records("gqa", "val"))
    assert corpus.image(rec).size == (rec.sample.width, rec.sample.height)


def test_a_crop_file_unlike_vlirs_is_reported_not_rejected(built_corpus, tmp_path):
    export_corpus(built_corpus, tmp_path / "dest")
    rows = json.loads((tmp_path / "dest" / DATA_FILE).read_text())
    row = next(r for r in rows if r["img_crop_list"])
    crop = tmp_path / "dest" / row["img_crop_list"][0]
    with Image.open(crop) as im:
        im.transpose(Image.Transpose.ROTATE_180).resize((im.width + 28, im.height)).save(crop)
    manifest = import_records(tmp_path / "dest", tmp_path / "back")
    rec = _by_id(tmp_path / "back")[row["id"]]
    check = rec.checks[-1]
    assert not check.passed and check.value > 5 and "vlir" in check.detail
    entry = manifest["annotator_stats"]["vlmr3_import"]["crop_diff"][row["id"]]["crop_0"]
    assert entry["same_size"] == 0 and entry["file_width"] == entry["vlir_width"] + 28
    assert rec.crops[0].width == entry["file_width"]  # the file's crop is what the record stores
    key = f"{row['source']}/{row['corpus_split']}"
    assert manifest["splits"][key]["stats"]["failed_crop_match"] == 1
    assert validate_output(tmp_path / "back").ok


def test_authors_records_without_vlir_keys(tmp_path):
    """The released data's shape: only the four keys their loader reads; paths relative to SRC."""
    src = tmp_path / "dataset"
    (src / "imgs").mkdir(parents=True)
    make_image(seed=1).save(src / "imgs" / "a.jpg", quality=95)
    Image.new("RGB", (112, 84), (220, 40, 40)).save(src / "imgs" / "a_crop_1.png")
    record = {"image_path": "imgs/a.jpg", "question": "What color is the square?",
              "response_list": ['<think> Find the square.\n\n{"bbox_2d": [40, 30, 140, 120], '
                                '"bbox_2d": [38, 28, 135, 116]}\n',
                                "It is red.</think>\n<answer>red</answer>\n"],
              "img_crop_list": ["imgs/a_crop_1.png"],
              "corpus_split": "elsewhere"}  # without vlir's id/source/split it names no folder
    (src / "sft.json").write_text(json.dumps([record]))
    manifest = import_records(src, tmp_path / "out", ImportConfig(source="vlmr3", split="train"))
    assert validate_output(tmp_path / "out").ok
    assert list(manifest["splits"]) == ["vlmr3/train"]
    (rec,) = _by_id(tmp_path / "out").values()
    assert rec.sample.id == "vlmr3/train/sft.json/0" and rec.sample.image == "imgs/a.jpg"
    assert rec.sample.answers == ("red",) and rec.chain.answer == "red"
    assert [type(s) for s in rec.chain.steps] == [Think, Look, Think]
    assert [s.text for s in rec.chain.steps if isinstance(s, Think)] == ["Find the square.", "It is red."]
    # the repeated key: the authors' loop crops the last box (json.loads keeps the last one)
    expected = geometry.from_model([38, 28, 135, 116], 320, 240, AUTHORS_SFT_BUDGET)
    assert rec.chain.looks[0].box == expected
    assert not rec.checks[-1].passed  # a flat red tile is not vlir's crop of that box
    assert manifest["roots"] == {"vlmr3": str(src.resolve())}


# ---------------------------------------------------------------------------------------------
# Rejects
# ---------------------------------------------------------------------------------------------

GOOD_PARTS = ['<think> Look.\n\n{"bbox_2d": [10, 10, 100, 90]}\n', "Red. </think>\n<answer>red</answer>"]


@pytest.fixture
def bad_src(tmp_path) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    make_image().save(src / "img.jpg")
    Image.new("RGB", (56, 56)).save(src / "crop.png")
    (src / "garbage.png").write_bytes(b"not an image at all")
    (src / "broken.jpg").write_bytes((src / "img.jpg").read_bytes()[:600])  # truncated
    (tmp_path / "elsewhere.jpg").write_bytes((src / "img.jpg").read_bytes())

    def rec(**kw):
        return {"image_path": "img.jpg", "question": "q?", "response_list": GOOD_PARTS,
                "img_crop_list": ["crop.png"], **kw}

    cases = {
        "ok": rec(),
        "malformed": rec(response_list="just a string"),
        "missing_image": rec(image_path="nope.jpg"),
        "corrupt_image": rec(image_path="broken.jpg"),
        "image_outside_root": rec(image_path="../elsewhere.jpg"),
        "missing_crop": rec(img_crop_list=["nope.png"]),
        "bad_crop": rec(img_crop_list=["garbage.png"]),
        "calls_crops_mismatch": rec(img_crop_list=["crop.png", "crop.png"]),
        "parts_crops_mismatch": rec(response_list=GOOD_PARTS[:1] + ["more text\n"] + GOOD_PARTS[1:]),
        "call_not_before_crop": rec(response_list=["<think> Look.\n", '{"bbox_2d": [10, 10, 100, 90]}\n'
                                                   "<answer>red</answer>"]),
        "bad_call": rec(response_list=['<think> {"bbox_2d": [100, 10, 10, 90]}\n', "<answer>red</answer>"]),
        "bad_box": rec(response_list=['<think> {"bbox_2d": [900, 900, 990, 990]}\n', "<answer>red</answer>"]),
        "no_answer": rec(response_list=[GOOD_PARTS[0], "Red, I think."]),
        "duplicate_id": rec(id="vlmr3/train/same", source="vlmr3", split="train"),
    }
    rows = []
    for reason, row in cases.items():
        rows.append(row)
        if reason == "duplicate_id":
            rows.append(dict(row))
    rows.insert(1, "not an object")
    (src / "records.json").write_text(json.dumps(rows))
    (src / "lines.jsonl").write_text(json.dumps(rec()) + "\n{broken\n")
    (src / "whole.json").write_text('[{"image_path": ')
    (src / "dict.json").write_text('{"image_path": "img.jpg"}')
    return src


def test_unreadable_records_are_rejects_with_reasons(bad_src, tmp_path):
    ticks: list[bool] = []
    manifest = import_records(bad_src, tmp_path / "out", progress=ticks.append)
    report = validate_output(tmp_path / "out")
    assert report.ok, report.problems
    split = manifest["splits"]["vlmr3/train"]
    reasons = split["rejected_by_reason"]
    expected = {"malformed": 2, "missing_image": 1, "corrupt_image": 1, "image_outside_root": 1,
                "missing_crop": 1, "bad_crop": 1, "calls_crops_mismatch": 1, "parts_crops_mismatch": 1,
                "call_not_before_crop": 1, "bad_call": 1, "bad_box": 1, "no_answer": 1,
                "duplicate_id": 1, "bad_json": 3}
    assert reasons == expected
    # ok, the jsonl's good line and the first of the duplicates are accepted
    assert split["accepted"] == 3 and split["rejected"] == sum(expected.values())
    assert sum(ticks) == 3 and len(ticks) == 3 + sum(expected.values())
    rejects = _by_id(tmp_path / "out", rejects=True)
    for rec in rejects.values():
        detail = rec.reject_detail
        assert rec.sample.meta["vlmr3"]["where"].split("#")[0].split(":")[0] in detail  # names the file
    by_reason = {r.reasons[0]: r for r in rejects.values()}
    bad_json = sorted(r.reject_detail for r in rejects.values() if r.reasons == ("bad_json",))
    assert [d.split(":")[0].split(" ")[0] for d in bad_json] == ["dict.json", "lines.jsonl", "whole.json"]
    assert "line 2" in bad_json[1] and "expected a JSON list" in bad_json[0]
    assert "1 crop call(s) but img_crop_list has 2" in by_reason["calls_crops_mismatch"].reject_detail
    assert "vlmr3/train/same#1" in rejects


def test_bad_invocations_are_input_errors(bad_src, taken_dest, tmp_path):
    with pytest.raises(ImportInputError, match="not an empty folder"):
        import_records(bad_src, taken_dest)
    with pytest.raises(ImportInputError, match="does not exist"):
        import_records(tmp_path / "nope", tmp_path / "o1")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ImportInputError, match="no \\*.json"):
        import_records(empty, tmp_path / "o2")
    with pytest.raises(ValueError, match="source must be"):
        ImportConfig(source="Bad-Name")
    for split in ("", "a b", "train/", "../x"):
        with pytest.raises(ValueError, match="split must be"):
            ImportConfig(split=split)


def test_format_configs_are_configs(tmp_path):
    """Export and import settings load from YAML with checked fields and help(); their budgets are
    knobs on the default family (the authors' model)."""
    from vlir.formats.vlmr3 import ExportConfig
    from vlir.geometry import PixelBudget
    from vlir.models.registry import default_family

    path = tmp_path / "import.yaml"
    path.write_text("budget: {min_pixels: 3136, max_pixels: 200704}\ncrop_tolerance: 1.5\n")
    cfg = ImportConfig.load(path)
    assert cfg.budget == default_family().view(PixelBudget(3136, 200704)) and cfg.crop_budget == default_family().crop()
    assert cfg.to_dict()["budget"] == {"min_pixels": 3136, "max_pixels": 200704}
    assert "crop_tolerance = 2.0" in ImportConfig.help() and "images = 'copy'" in ExportConfig.help()
    with pytest.raises(ValueError, match="crop_tolerance must be >= 0"):
        ImportConfig(crop_tolerance=-1)
    with pytest.raises(ValueError, match="unknown export config key image"):
        ExportConfig.load(None, ["image=copy"])
    assert ExportConfig.load(None, ["splits=[train]"]).splits == ("train",)

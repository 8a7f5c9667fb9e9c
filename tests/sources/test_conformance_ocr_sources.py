"""Conformance on real official records (``../shared/real/``, skipped when absent): the adapters
read the real files, yield the expected counts, and every evidence box lies inside its image.
The pack's quirks are checked by name (see its README): a grayscale TextVQA JPEG, a TextVQA image
whose OCR is empty, grayscale DocVQA PNGs, and, for InfographicsVQA, only a real Textract file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from PIL import Image

from vlir.records import Sample
from vlir.sources.base import SourceError
from vlir.sources.docvqa import DocVQA
from vlir.sources.infographicsvqa import InfographicsVQA
from vlir.sources.ocr import textract_regions
from vlir.sources.textvqa import TextVQA
from tests.sources.conftest import read_all as read

REAL = Path(__file__).resolve().parents[2].parent / "shared" / "real"
pytestmark = pytest.mark.skipif(not REAL.is_dir(), reason="shared/real pack not present")




def check_samples(root: Path, samples: list) -> None:
    for s in samples:
        assert isinstance(s, Sample), s
        with Image.open(root / s.image) as img:
            assert img.size == (s.width, s.height), s.id
        for r in s.evidence:
            assert 0 <= r.box.x1 < r.box.x2 <= s.width and 0 <= r.box.y1 < r.box.y2 <= s.height, r


@pytest.mark.parametrize("split,ids", [("train", [0, 1, 2, 3, 4]),
                                       ("val", [34602, 34603, 34604, 34605, 34606])])
def test_textvqa_real(split, ids):
    root = REAL / "textvqa"
    samples, stats = read(TextVQA(), root, split)
    assert [s.id for s in samples] == [f"textvqa/{split}/{i}" for i in ids]
    assert stats["samples"] == 5 and stats["invalid"] == 0 and stats["missing_ocr"] == 0
    check_samples(root, samples)
    assert all(len(s.answers) == 10 and s.image.startswith("train_images/") for s in samples)
    assert sum(bool(s.evidence) for s in samples) >= 4


def test_textvqa_real_quirks():
    root = REAL / "textvqa"
    samples = read(TextVQA(), root, "train")[0] + read(TextVQA(), root, "val")[0]
    by_image = {Path(s.image).stem: s for s in samples}
    assert by_image["0054c91397f2fe05"].evidence == ()  # empty Rosetta entry: kept, no boxes
    gray = by_image["005635e119b9f32f"]
    assert Image.open(root / gray.image).mode == "L" and gray.evidence
    # Visual-CoT's first TextVQA line is a val question on 831bcec304a17054.jpg
    aged = [s for s in samples if s.question == "how long has the drink on the right been aged?"]
    assert aged and aged[0].image == "train_images/831bcec304a17054.jpg"


def test_docvqa_real():
    root = REAL / "docvqa"
    samples, stats = read(DocVQA(), root, "val")
    assert len(samples) == 12 and stats["samples"] == 12
    assert stats["invalid"] == 0 and stats["missing_ocr"] == 0
    check_samples(root, samples)
    assert samples[0].id == "docvqa/val/26167" and samples[0].answers == ("2", "page 2")
    assert samples[0].meta["ucsf_document_page_no"] == "2"
    assert all(s.image.startswith("documents/") for s in samples)
    kinds = Counter(r.kind for s in samples for r in s.evidence)
    assert kinds["ocr_line"] > 0 and kinds["ocr_word"] > kinds["ocr_line"]
    # the OCR's page size is the image's size (the adapter takes it from the OCR)
    assert {Image.open(root / s.image).mode for s in samples} == {"L"}


def test_infographicsvqa_real_textract_file():
    doc = json.loads((REAL / "infographicsvqa" / "ocr" / "20196.json").read_text())
    stats = Counter()
    width, height = 1000, 4000
    regions = textract_regions(doc, width, height, stats)
    kinds = Counter(r.kind for r in regions)
    assert kinds == Counter(ocr_line=79, ocr_word=146) and stats["degenerate_box"] == 0
    for r in regions:
        assert 0 <= r.box.x1 < r.box.x2 <= width and 0 <= r.box.y1 < r.box.y2 <= height
    assert regions[0].label == "Are we alone?"
    first_word = next(r for r in regions if r.kind == "ocr_word")
    assert first_word.label == "Are" and first_word.box.x1 == pytest.approx(0.32829833 * width, abs=1e-3)


def test_infographicsvqa_real_pack_has_no_questions():
    """Only the OCR file is in the pack: the adapter says which files it looked for."""
    with pytest.raises(SourceError, match="infographicsVQA_val_v1.0"):
        read(InfographicsVQA(), REAL / "infographicsvqa", "val")

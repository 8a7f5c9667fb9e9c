"""Issue 23's invariants, held by structure: ``vlir.images`` is the only place an image is opened
(one decode: EXIF orientation, bit depth), and the modules that read paths from data join them
only through :mod:`vlir.paths` (or :func:`vlir.images.safe_path`, which calls it)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "vlir"

#: the modules that read paths from data (rows, import JSON, manifests, benchmark files)
DATA_PATH_MODULES = sorted({*PACKAGE.glob("formats/*.py"), *PACKAGE.glob("eval/benchmarks/*.py"),
                            *(PACKAGE / "corpus" / f"{m}.py" for m in ("build", "validate", "show", "cards",
                                                                       "shards", "sample_frame")),
                            PACKAGE / "eval" / "evaluate.py"})

#: ``base / <a field read from data>``: a row, record, sample or benchmark entry's value
UNCONFINED_JOIN = re.compile(r"/\s*(?:str\()?(?:row|rec|record|sample|s|p|obj|problem|entry|item|ann)"
                             r"(?:\.sample)?(?:\.image\b|\.get\(|\[)")


def _code_lines(path: Path):
    for n, line in enumerate(path.read_text().splitlines(), 1):
        code = line.split("#", 1)[0]
        if code.strip():
            yield n, code


def test_images_are_opened_only_by_vlir_images():
    offenders = [f"{p.relative_to(REPO)}:{n}" for p in PACKAGE.rglob("*.py") if p.name != "images.py"
                 or p.parent != PACKAGE for n, code in _code_lines(p) if "Image.open(" in code]
    assert not offenders, f"open images through vlir.images (the one decode): {offenders}"


def test_data_paths_are_joined_only_through_the_confinement_helper():
    assert len(DATA_PATH_MODULES) > 10 and all(p.is_file() for p in DATA_PATH_MODULES)
    offenders = [f"{p.relative_to(REPO)}:{n}: {code.strip()}" for p in DATA_PATH_MODULES
                 for n, code in _code_lines(p) if UNCONFINED_JOIN.search(code)]
    assert not offenders, f"join paths from data with vlir.paths.confine: {offenders}"


def test_the_pattern_catches_the_joins_that_were_there():
    """The joins issue 23 found (and a few like them) match the pattern; a confined one does not."""
    for was in ('ImageRef(path=root / rec["Image"])', "PurePosixPath(IMAGES_DIR) / s.image",
                'file = root / str(row.get("filename") or "")', 'image = base / record.sample.image',
                'root / p["image"]'):
        assert UNCONFINED_JOIN.search(was), was
    assert not UNCONFINED_JOIN.search('confine(root, rec["Image"], "image", "the benchmark folder")')

"""TextVQA 0.5.1: questions about text in photos, with Rosetta OCR words as evidence.

Official layout (https://textvqa.org/dataset)::

    TextVQA_0.5.1_{train,val,test}.json          {"dataset_type", "dataset_name", "dataset_version",
                                                  "data": [question records]}
    TextVQA_Rosetta_OCR_v0.2_{train,val,test}.json {"data": [{"image_id", "ocr_tokens", "ocr_info"}]}
    train_images/<image_id>.jpg                   train AND val images (train_val_images.zip)
    test_images/<image_id>.jpg

A record has question, question_id (int), image_id, image_width, image_height, answers (10 strings;
absent in test), image_classes, set_name, flickr urls and question_tokens.
"""

from __future__ import annotations

import logging
import random
from array import array
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

from PIL import Image, ImageDraw

from vlir.images import ImageError
from vlir.records import Invalid, Sample
from vlir.sources import synth
from vlir.sources.base import Source, find_dir, find_file, register
from vlir.sources.ocr import rosetta_compact, rosetta_regions
from vlir.sources.qa_common import (LRU, Malformed, answers, dir_in_root, display_path, draw_words,
                                    dump_json, image_relpath, iter_data_records, join, native_id,
                                    optional, peek_id, string_list, text)
from vlir.sources.support import ImageFiles, reject

log = logging.getLogger(__name__)

OPTIONS = ("questions", "ocr", "images")
META_FIELDS = ("image_id", "image_classes", "set_name", "flickr_original_url", "flickr_300k_url")


@register
class TextVQA(Source):
    """TextVQA 0.5.1 reader.

    Options: ``questions=`` path of ``TextVQA_0.5.1_<split>.json``; ``ocr=`` path of
    ``TextVQA_Rosetta_OCR_v0.2_<split>.json`` (optional: without it every sample has empty
    evidence and counts as ``missing_ocr``); ``images=`` the image folder, inside the root
    (default: ``train_images/`` for train and val, ``test_images/`` for test).
    Width and height come from the record (``image_width``/``image_height``), else the image header.
    A sample whose image file is absent is ``Invalid("missing_image")``, as in every adapter.
    """

    name = "textvqa"
    title = "TextVQA 0.5.1"
    splits = ("train", "val", "test")
    expected_files = (
        "TextVQA_0.5.1_{split}.json",
        "TextVQA_Rosetta_OCR_v0.2_{split}.json",
        "train_images/<image_id>.jpg (train and val, from train_val_images.zip)",
        "test_images/<image_id>.jpg (test, from test_images.zip)",
    )
    homepage = "https://textvqa.org/dataset"
    license = "CC BY 4.0 (images: OpenImages, CC BY 2.0)"

    def iter_samples(self, root: Path, split: str, stats: Counter | None = None,
                     **options: Any) -> Iterator[Sample | Invalid]:
        self.check_split(split)
        self.check_options(options, OPTIONS)
        stats = stats if stats is not None else Counter()
        root = Path(root)
        qpath = find_file(root, [f"TextVQA_0.5.1_{split}.json"], options.get("questions"))
        opath = find_file(root, [f"TextVQA_Rosetta_OCR_v0.2_{split}.json"], options.get("ocr"),
                          required=False)
        folder = "test_images" if split == "test" else "train_images"
        if options.get("images"):
            images = dir_in_root(root, options["images"], "images")
        else:
            found = find_dir(root, [folder], required=False)
            images = dir_in_root(root, found.resolve(), "images") if found else folder
        if opath is None:
            log.warning("textvqa %s: no Rosetta OCR file under %s: evidence will be empty", split, root)
        ocr = _rosetta_index(opath, stats) if opath else {}
        files, regions = ImageFiles(root), LRU[tuple](64)
        qname = display_path(root, qpath)
        for index, record in iter_data_records(qpath):
            rid = peek_id(record, "question_id", index)
            try:
                sample = self._sample(record, root, split, images, ocr, files, regions,
                                      opath is not None, stats)
            except Malformed as exc:
                yield reject(stats, self.name, split, rid, "malformed", f"{qname}: record {rid}: {exc}")
            except ImageError as exc:
                yield reject(stats, self.name, split, rid, exc.reason, f"{qname}: record {rid}: {exc}")
            else:
                stats["samples"] += 1
                yield sample

    def _sample(self, record: Any, root: Path, split: str, images: str,
                ocr: dict[str, tuple[tuple[str, ...], array]], files: ImageFiles,
                regions: LRU[tuple], have_ocr: bool, stats: Counter) -> Sample:
        qid = native_id(record, "question_id")
        question = text(record, "question")
        golds = answers(record, "answers", required=split != "test")
        image_id = text(record, "image_id")
        meta: dict[str, Any] = {}
        for key in META_FIELDS:
            value = string_list(record, key) if key == "image_classes" else optional(record, key, str)
            if value is not None:
                meta[key] = value
        image = image_relpath(root, join(images, f"{image_id}.jpg"))
        width, height = optional(record, "image_width", int), optional(record, "image_height", int)
        if width is None or height is None:
            width, height = files.size(image)
        elif width <= 0 or height <= 0:
            raise Malformed(f"image size {width}x{height} is not positive")
        else:
            files.check(image)
        entry = ocr.get(image_id)
        if entry is None:
            stats["missing_ocr"] += 1
            if have_ocr:
                log.debug("textvqa: no OCR entry for image %s", image_id)
            evidence: tuple = ()
        else:  # questions about one image come together: build its regions once
            evidence = regions.get((image_id, width, height),
                                   lambda: rosetta_regions(entry[0], entry[1], width, height, stats))
        return Sample(id=f"{self.name}/{split}/{qid}", source=self.name, split=split, image=image,
                      width=width, height=height, question=question, answers=golds,
                      evidence=evidence, meta=meta)

    def write_sample_tree(self, out: Path, per_split: int, seed: int) -> None:
        _write_tree(Path(out), per_split, seed)


def _rosetta_index(path: Path, stats: Counter) -> dict[str, tuple[tuple[str, ...], array]]:
    """image_id -> compact OCR words, streamed from the Rosetta file (one pass, bounded per word)."""
    index: dict[str, tuple[tuple[str, ...], array]] = {}
    for _, entry in iter_data_records(path):
        image_id = entry.get("image_id") if isinstance(entry, dict) else None
        if not isinstance(image_id, str):
            stats["bad_ocr_entries"] += 1
            continue
        index[image_id] = rosetta_compact(entry.get("ocr_info"))
    return index


# ---------------------------------------------------------------------------------------------
# The sample tree: photos of coloured signs with words on them
# ---------------------------------------------------------------------------------------------

SIGN_COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")
SIZES = ((640, 480), (800, 600), (960, 640), (600, 800), (720, 540))
CLASSES = ("Billboard", "Street sign", "Building", "Poster", "Car", "Person", "Tree", "Window")


def _write_tree(out: Path, per_split: int, seed: int) -> None:
    rng = random.Random(f"textvqa:{seed}")
    qid = 0
    for split in ("train", "val"):
        records, ocr_entries = [], []
        n_images = max(1, (per_split + 1) // 2)
        photos = []
        for i in range(n_images):
            image_id = f"{rng.getrandbits(64):016x}"
            gray = split == "train" and i == 0
            empty_ocr = split == "val" and i == n_images - 1
            img, signs = _draw_photo(rng)
            if gray:
                img = img.convert("L")
            synth.save_image(img, out / "train_images" / f"{image_id}.jpg", "JPEG")
            words = [] if empty_ocr else [(w, box) for sign in signs for w, box in sign["words"]]
            ocr_entries.append(_rosetta_entry(image_id, words, img.size))
            photos.append((image_id, img.size, signs))
        for q in range(per_split):
            image_id, (w, h), signs = photos[q // 2]
            sign = signs[(q // 2 + q) % len(signs)]
            question, answer = _question(sign, q % 2)
            records.append({
                "question": question,
                "image_id": image_id,
                "image_classes": sorted(rng.sample(CLASSES, 3)),
                "flickr_original_url": f"https://farm1.staticflickr.com/1/{image_id}_o.jpg",
                "flickr_300k_url": f"https://c1.staticflickr.com/1/{image_id}_z.jpg",
                "image_width": w,
                "image_height": h,
                "answers": _ten_answers(rng, answer),
                "question_tokens": question.rstrip("?").split(),
                "question_id": qid,
                "set_name": split,
            })
            qid += 1
        header = {"dataset_type": split, "dataset_name": "textvqa", "dataset_version": "0.5.1"}
        dump_json(out / f"TextVQA_0.5.1_{split}.json", {**header, "data": records})
        dump_json(out / f"TextVQA_Rosetta_OCR_v0.2_{split}.json", {"data": ocr_entries})


def _draw_photo(rng: random.Random) -> tuple[Image.Image, list[dict[str, Any]]]:
    """A soft background with 2-3 signs side by side; each sign carries 1-2 words, each word's
    ink box recorded separately (Rosetta reports words)."""
    width, height = rng.choice(SIZES)
    img = synth.noise_background(rng, width, height)
    draw = ImageDraw.Draw(img)
    n = rng.choice((2, 3))
    colors = rng.sample(SIGN_COLORS, n)
    col_w = width // n
    signs = []
    for k, color in enumerate(colors):
        words = [w.upper() if rng.random() < 0.5 else w.capitalize()
                 for w in rng.sample(synth.WORDS, 2 if k == 0 else rng.choice((1, 2)))]
        size = rng.choice((32, 40, 48))
        while size > 14 and synth.text_size(" ".join(words), size)[0] > col_w - 40:
            size -= 4
        tw, th = synth.text_size(" ".join(words), size)
        pad = size // 3
        x0 = k * col_w + rng.randint(10, max(10, col_w - tw - 2 * pad - 10))
        y0 = rng.randint(height // 8, max(height // 8, height - th - 2 * pad - height // 8))
        fill = synth.COLORS[color]
        ink = (20, 20, 20) if color in ("yellow", "white", "orange") else (250, 250, 250)
        draw.rectangle([x0, y0, x0 + tw + 2 * pad, y0 + th + 2 * pad + size // 4], fill=fill)
        drawn = draw_words(draw, (x0 + pad, y0 + pad), words, size, ink)
        signs.append({"color": color, "words": drawn})
    return img, signs


def _question(sign: dict[str, Any], template: int) -> tuple[str, str]:
    words = [w for w, _ in sign["words"]]
    if template == 0 or len(words) == 1:
        return f"what does the {sign['color']} sign say?", " ".join(words).lower()
    return f"what is the first word on the {sign['color']} sign?", words[0].lower()


def _ten_answers(rng: random.Random, answer: str) -> list[str]:
    """Ten annotator answers as TextVQA has them: mostly the text, a few stray ones."""
    out = [answer] * 10
    for i in rng.sample(range(10), rng.choice((0, 1, 2))):
        out[i] = rng.choice(("unanswerable", answer.split()[0], answer.upper(), "yes"))
    return out


def _rosetta_entry(image_id: str, words: list, size: tuple[int, int]) -> dict[str, Any]:
    w, h = size
    info = [{"word": word, "bounding_box": {
        "top_left_x": box.x1 / w, "top_left_y": box.y1 / h, "width": box.width / w,
        "height": box.height / h, "rotation": 0.0, "yaw": 0.0, "roll": 0.0, "pitch": 0.0}}
        for word, box in words]
    return {"image_id": image_id, "ocr_tokens": [word for word, _ in words], "ocr_info": info}


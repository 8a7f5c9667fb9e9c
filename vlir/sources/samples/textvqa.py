"""TextVQA's sample tree: photos of coloured signs with words on them, the Rosetta OCR of each
word, and the question files (``TextVQA_0.5.1_<split>.json``) in the official layout."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from vlir.sources.samples import synth
from vlir.sources.samples.synth import draw_words, dump_json

SIGN_COLORS = ("red", "green", "blue", "yellow", "orange", "purple", "black", "white")
SIZES = ((640, 480), (800, 600), (960, 640), (600, 800), (720, 540))
CLASSES = ("Billboard", "Street sign", "Building", "Poster", "Car", "Person", "Tree", "Window")


def write_tree(out: Path, per_split: int, seed: int) -> None:
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

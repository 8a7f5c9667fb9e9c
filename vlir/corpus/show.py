"""``vlir show``: one self-contained HTML page to look at records as a person would.

Each record shows its image with the look boxes drawn and numbered, the crops in order, the chain's
text, the answer and every check's result; rejected records are marked with their reasons. Images
are inlined as data URLs, so the page is a single file that opens anywhere. A small script stamps
``data-rendered`` / ``data-broken`` on ``<body>`` once the images load, which the browser test reads.
"""

from __future__ import annotations

import base64
import html
import io
from itertools import islice
from pathlib import Path
from typing import Iterator

from PIL import Image, ImageDraw

from vlir.records import Look, Record, Think
from vlir.corpus.shards import Corpus

COLORS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#9a6324"]
PREVIEW_MAX_SIDE = 640

STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
section.record{background:#fff;border:1px solid #ddd;border-radius:8px;padding:1em;margin:0 0 1.5em}
section.rejected{border-color:#c33;background:#fff6f6}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-size:12px;color:#fff}
.accepted .badge{background:#2a7} .rejected .badge{background:#c33}
.row{display:flex;gap:1em;flex-wrap:wrap;align-items:flex-start}
.crops img{max-height:200px;border:2px solid #ccc;margin-right:.5em}
ol.chain li{margin:.3em 0} .look{font-family:monospace}
table.checks td{padding:1px 8px;font-size:13px} .fail{color:#c33;font-weight:bold} .pass{color:#2a7}
"""

SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.querySelectorAll('img'));
  var broken = imgs.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length;
  document.body.setAttribute('data-rendered', document.querySelectorAll('section.record').length);
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-broken', broken);
});
"""


def _data_url(img: Image.Image, fmt: str = "JPEG") -> str:
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt, quality=85) if fmt == "JPEG" else img.save(buf, format=fmt)
    mime = "jpeg" if fmt == "JPEG" else fmt.lower()
    return f"data:image/{mime};base64,{base64.b64encode(buf.getvalue()).decode()}"


def annotated_preview(image: Image.Image, record: Record) -> Image.Image:
    """A downscaled copy of the original with each look box drawn and numbered."""
    scale = min(1.0, PREVIEW_MAX_SIDE / max(image.size))
    preview = image.convert("RGB").resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))))
    draw = ImageDraw.Draw(preview)
    looks = record.chain.looks if record.chain else []
    for i, look in enumerate(looks):
        b = look.box
        color = COLORS[i % len(COLORS)]
        draw.rectangle([b.x1 * scale, b.y1 * scale, b.x2 * scale, b.y2 * scale], outline=color, width=3)
        draw.text((b.x1 * scale + 3, b.y1 * scale + 2), str(i + 1), fill=color)
    return preview


def _chain_html(record: Record) -> str:
    if record.chain is None:
        return "<p><em>no chain</em></p>"
    items, n = [], 0
    for step in record.chain.steps:
        if isinstance(step, Think):
            items.append(f"<li>{html.escape(step.text)}</li>")
        elif isinstance(step, Look):
            n += 1
            color = COLORS[(n - 1) % len(COLORS)]
            box = ", ".join(f"{v:.0f}" for v in step.box.as_list())
            items.append(f'<li class="look" style="color:{color}">look #{n}: [{box}] '
                         f"{html.escape(step.label)}</li>")
    items.append(f"<li><strong>answer: {html.escape(record.chain.answer)}</strong></li>")
    return '<ol class="chain">' + "".join(items) + "</ol>"


def record_html(record: Record, image: Image.Image | None, image_error: str = "") -> str:
    s = record.sample
    status = "accepted" if record.accepted else "rejected"
    reasons = f" — {html.escape(', '.join(record.reasons))}" if record.reasons else ""
    head = (f'<h3><span class="badge">{status}</span> {html.escape(s.id)}{reasons}</h3>'
            f"<p><strong>Q:</strong> {html.escape(s.question)}<br><strong>gold:</strong> "
            f"{html.escape(' | '.join(dict.fromkeys(s.answers)))}</p>")
    if image is not None:
        picture = f'<img alt="image" src="{_data_url(annotated_preview(image, record))}">'
    else:
        picture = f"<p><em>image unavailable: {html.escape(image_error)}</em></p>"
    crops = "".join(f'<img alt="crop {i + 1}" title="crop {i + 1} (x{c.scale:.2f})" '
                    f'src="data:image/png;base64,{base64.b64encode(c.png).decode()}">'
                    for i, c in enumerate(record.crops))
    checks = "".join(f'<tr><td class="{"pass" if c.passed else "fail"}">{"✓" if c.passed else "✗"}</td>'
                     f"<td>{html.escape(c.name)}</td><td>{'' if c.value is None else f'{c.value:.3g}'}</td>"
                     f"<td>{html.escape(c.detail)}</td></tr>" for c in record.checks)
    return (f'<section class="record {status}" data-id="{html.escape(s.id)}">{head}'
            f'<div class="row"><div>{picture}</div><div>{_chain_html(record)}</div></div>'
            f'<div class="crops">{crops}</div><table class="checks">{checks}</table></section>')


def iter_records(corpus: Corpus, source: str | None) -> Iterator[Record]:
    """Accepted and rejected records of every split, interleaved split by split."""
    for src, split in corpus.splits():
        if source and src != source:
            continue
        yield from corpus.records(src, split)
        yield from corpus.records(src, split, rejects=True)


def write_page(out: Path, dest: Path, n: int = 50, source: str | None = None) -> int:
    """Write the page for up to ``n`` records; returns how many it holds."""
    corpus = Corpus(out)
    sections = []
    for record in islice(iter_records(corpus, source), n):
        image, error = None, ""
        try:
            image = corpus.image(record)
        except Exception as exc:  # a reject's image may be missing or broken: say so on the page
            error = str(exc)
        sections.append(record_html(record, image, error))
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>vlir records</title>"
            f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>"
            f"<h1>vlir: {html.escape(str(out))}</h1><p>{len(sections)} records</p>"
            + "".join(sections) + "</body></html>")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(page, encoding="utf-8")
    return len(sections)

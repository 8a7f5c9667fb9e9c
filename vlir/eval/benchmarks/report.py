"""What a benchmark run leaves for people: ``report.md`` (the table as the papers print it, the
per-category breakdown with counts, the labelled alternatives, crop hit rates, the protocol), a PNG
(accuracy per category; crop hit rates where the benchmark has target boxes) and, with ``--html``,
``index.html`` showing each trajectory with its crops drawn on the image and shown zoomed.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from vlir.eval.benchmarks.base import Benchmark, BenchItem

REPORT, PLOT, HTML_DIR = "report.md", "scores.png", "html"


_MD_SPECIAL = re.compile(r"([\\`*_\[\]()|~])")


def md(value: Any) -> str:
    """Any data field as inert Markdown text on one line: HTML escaped (a ``<script>`` in a
    category name stays text), Markdown's punctuation backslash-escaped (no link, emphasis,
    code span or table cell can be opened), line breaks made spaces."""
    text = " ".join(str(value).split())
    return html.escape(_MD_SPECIAL.sub(r"\\\1", text), quote=True)


def _code(value: Any) -> str:
    """A code span for a name the code defines (a figure's key, the official script's path), or
    :func:`md` text should it hold a backtick or a line break (a code span cannot escape them)."""
    text = str(value)
    return f"`{text}`" if "`" not in text and "\n" not in text and "<" not in text else md(text)


def _md_table(heads: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; every cell goes through :func:`md`."""
    return ["| " + " | ".join(map(md, heads)) + " |", "|" + "---|" * len(heads),
            *("| " + " | ".join(map(md, r)) + " |" for r in rows)]


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


# keys of ``aggregate``'s result shown elsewhere or too long for the report (kept in scores.json)
SHOWN = ("overall", "n", "categories", "overall_std", "per_sample", "cycles", "fine")


def _extra(v) -> str:
    """One line for a benchmark's extra figure: a fraction as a percentage, a breakdown of
    ``{name: {"score", "n"}}`` inline, anything else as text."""
    if isinstance(v, float):
        return _pct(v)
    if isinstance(v, dict) and all(isinstance(x, dict) and "score" in x for x in v.values()):
        return ", ".join(f"{md(t)} {_pct(x['score'])} (n={md(x.get('n', '?'))})" for t, x in v.items())
    return md(str(v)[:300])


def write_report(bench: Benchmark, scores: dict[str, Any], out: Path) -> None:
    res = scores["scores"]
    heads, vals = bench.table(res)
    spread = f" ± {_pct(res['overall_std'])} (std over {len(res['per_sample'])} samples)" if "overall_std" in res else ""
    judge = scores["judge"] if isinstance(scores["judge"], str) else f"LLM judge {scores['judge']['model']}"
    lines = [f"# {md(bench.name)}", "",
             f"Official scoring: {_code(bench.official)}; per-item judge: **{md(judge)}**.", "",
             *_md_table(heads, [vals]), "", f"Overall {_pct(res['overall'])}{spread} over {res['n']} items.", "",
             "## Per category", "", *_md_table(["category", "score", "n"],
                                              [[c, _pct(v["score"]), str(v["n"])] for c, v in res.get("categories", {}).items()])]
    for k, v in res.items():
        if k not in SHOWN:
            lines += ["", f"- {_code(k)}: {_extra(v)}"]
    if scores["alternatives"]:
        lines += ["", "## Alternative rules (labelled; not the official figure)", "",
                  *_md_table(["rule", "overall", *res.get("categories", {})],
                             [[k, _pct(a["overall"]), *(_pct(a["categories"].get(c, {}).get("score", 0.0))
                                                        for c in res.get("categories", {}))]
                              for k, a in scores["alternatives"].items()])]
    if scores["metrics"]:
        lines += ["", "## Per-item metrics (mean)", "",
                  *_md_table(["metric", "all"], [[k, _pct(v["all"])] for k, v in scores["metrics"].items()])]
    if scores["crop_hits"]:
        lines += ["", "## Crops against the target boxes", "",
                  "crop_hit: a crop with IoU >= 0.5 with a target; crop_covers: a crop holding >= 90 % of a "
                  "target; crop_best_iou: mean best IoU (see vlir/eval/benchmarks/runner.py).", "",
                  *_md_table(["measure", "all", "n"], [[k, _pct(v["all"]["rate"]), str(v["all"]["n"])]
                                                       for k, v in scores["crop_hits"].items()])]
    t = scores["trajectories"]
    lines += ["", "## Protocol", "", *_md_table(["setting", "value"], [[k, v] for k, v in sorted(scores["protocol"].items())]),
              "", f"Trajectories: {t['rows']} rows, {t['crops_per_answer']:.2f} crops and {t['tokens_per_answer']:.1f} "
              f"tokens per answer; finish reasons {md(t['finish_reasons'])}.", ""]
    (out / REPORT).write_text("\n".join(lines), encoding="utf-8")
    plot(bench, scores, out / PLOT)


def plot(bench: Benchmark, scores: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = scores["scores"].get("categories", {})
    hits = scores["crop_hits"]
    panels = 2 if hits else 1
    fig, axes = plt.subplots(1, panels, figsize=(6.4 * panels, 4.0), squeeze=False)
    ax = axes[0, 0]
    names = [str(c).replace("$", r"\$") for c in cats] + ["Overall"]  # no mathtext from data
    values = [100 * v["score"] for v in cats.values()] + [100 * scores["scores"]["overall"]]
    ax.bar(range(len(names)), values, color=["#6d9ac4"] * len(cats) + ["#1f4e79"])
    ax.set_xticks(range(len(names)), [n if len(n) < 24 else n[:22] + "…" for n in names], rotation=35, ha="right",
                  fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{bench.name}: accuracy per category".replace("$", r"\$"))
    if hits:
        ax2 = axes[0, 1]
        keys = list(hits)
        ax2.bar(range(len(keys)), [100 * hits[k]["all"]["rate"] for k in keys], color="#c47a6d")
        ax2.set_xticks(range(len(keys)), keys)
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("% of items with target boxes")
        ax2.set_title("crops against the target boxes")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def _slug(item_id: str, sample: int) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", item_id) + f"-{sample}"


def save_assets(out: Path, item: BenchItem, image, sample: int, resp) -> None:
    """The original with the crop boxes (red) and targets (green) drawn, and each crop's PNG."""
    from PIL import ImageDraw

    folder = out / HTML_DIR / _slug(item.id, sample)
    folder.mkdir(parents=True, exist_ok=True)
    marked = image.convert("RGB").copy()
    draw = ImageDraw.Draw(marked)
    width = max(2, marked.width // 250)
    for box in item.target_boxes:
        draw.rectangle(box.as_list(), outline=(0, 200, 0), width=width)
    for box in resp.boxes:
        draw.rectangle(box.as_list(), outline=(255, 0, 0), width=width)
    marked.thumbnail((1024, 1024))
    marked.save(folder / "original.jpg", quality=85)
    for i, png in enumerate(resp.crops_png, 1):
        (folder / f"crop_{i}.png").write_bytes(png)


def write_html(out: Path, rows: list[dict[str, Any]]) -> None:
    parts = ["<!doctype html><meta charset='utf-8'><title>vlir eval</title>",
             "<style>body{font:14px/1.45 sans-serif;max-width:70em;margin:2em auto}pre{white-space:pre-wrap;"
             "background:#f6f6f6;padding:.5em}img{max-width:100%;border:1px solid #999}.c img{max-height:220px}"
             ".ok{color:#070}.bad{color:#a00}section{border-top:2px solid #ccc;margin-top:1.5em}</style>"]
    for r in rows:
        slug = _slug(r["id"], r.get("sample", 0))
        folder = out / HTML_DIR / slug
        cls = "ok" if r["score"] >= 1 else "bad"
        parts.append(f"<section><h3>{html.escape(str(r['id']))} (sample {html.escape(str(r.get('sample', 0)))}) — "
                     f"<span class='{cls}'>score {r['score']:.2f}</span></h3>"
                     f"<pre>{html.escape(r.get('prompt', ''))}</pre>")
        if (folder / "original.jpg").is_file():
            parts.append(f"<img src='{HTML_DIR}/{slug}/original.jpg' alt='original, crops red, targets green'>")
        parts.append(f"<pre>{html.escape(r['response'])}</pre><div class='c'>")
        for i in range(1, r.get("crops", 0) + 1):
            if (folder / f"crop_{i}.png").is_file():
                parts.append(f"<img src='{HTML_DIR}/{slug}/crop_{i}.png' alt='crop {i}'>")
        parts.append(f"</div><p>boxes {html.escape(str(r.get('boxes')))}; parsed "
                     f"<b>{html.escape(str(r.get('parsed_answer')))}</b>, extracted "
                     f"<b>{html.escape(str(r.get('extracted')))}</b>, gold <b>{html.escape(str(r['item']['answer']))}</b>"
                     "</p></section>")
    (out / "index.html").write_text("\n".join(parts) + "\n", encoding="utf-8")

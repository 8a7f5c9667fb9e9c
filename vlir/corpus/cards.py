"""``vlir card``: the dataset card (``<out>/README.md``) in the layout the Hugging Face Hub expects,
with statistics tables per source/split and PNG plots in ``<out>/card/``.

Statistics are streamed from the shards' light columns (never the image bytes), so the card of a
large corpus costs one pass over a few columns. The template and the licence notes live in
``data_cards/`` (package data).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import yaml

from vlir.corpus import layout
from vlir.corpus.shards import MANIFEST, atomic_write_bytes, iter_rows, shard_files
from vlir.paths import confine

LIGHT_COLUMNS = ["steps", "crop_info", "answer", "width", "height"]


@dataclass
class SplitStats:
    accepted: int = 0
    rejected: int = 0
    reasons: Counter = field(default_factory=Counter)
    looks: list[int] = field(default_factory=list)
    area_ratios: list[float] = field(default_factory=list)
    scales: list[float] = field(default_factory=list)
    answer_words: list[int] = field(default_factory=list)


def collect(out: Path, manifest: dict[str, Any]) -> dict[str, SplitStats]:
    stats: dict[str, SplitStats] = {}
    for key, entry in manifest["splits"].items():
        s = stats[key] = SplitStats(entry["accepted"], entry["rejected"], Counter(entry["rejected_by_reason"]))
        for path in shard_files(confine(out, key, "manifest split", "the output folder")):
            for row in iter_rows(path, columns=LIGHT_COLUMNS, batch_rows=512):
                looks = [st for st in row["steps"] or () if st["type"] == "look"]
                s.looks.append(len(looks))
                for st in looks:
                    x1, y1, x2, y2 = st["box"]
                    s.area_ratios.append((x2 - x1) * (y2 - y1) / (row["width"] * row["height"]))
                s.scales.extend(c["scale"] for c in row["crop_info"] or ())
                s.answer_words.append(len((row["answer"] or "").split()))
    return stats


def _mean(xs: list[float]) -> str:
    return f"{statistics.fmean(xs):.2f}" if xs else "–"


def _median(xs: list[float]) -> str:
    return f"{statistics.median(xs):.3f}" if xs else "–"


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def hub_split_name(split: str) -> str:
    """Hub split names must match ``\\w+(\\.\\w+)*``: ``random/train`` -> ``random_train``."""
    return re.sub(r"\W", "_", split)


def hub_configs(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """The card's ``configs``: per source, its accepted records and its rejects (``<source>_rejects``).
    A split is listed only when the manifest counts rows of that kind in it, and a config only when
    it has a split: empty shards are not written, so any other entry would make
    ``load_dataset(folder, config)`` fail with "corresponds to no data"."""
    configs = []
    for src in sorted({e["source"] for e in manifest["splits"].values()}):
        for name, rejects in ((src, False), (f"{src}_rejects", True)):
            files = [{"split": hub_split_name(e["split"]),
                      "path": f"{layout.split_rel(src, e['split'], rejects)}/"
                              f"{layout.REJECTS_PREFIX if rejects else layout.PART_PREFIX}-*.parquet"}
                     for e in manifest["splits"].values()
                     if e["source"] == src and e["rejected" if rejects else "accepted"] > 0]
            if files:
                configs.append({"config_name": name, "data_files": files})
    return configs


def yaml_header(manifest: dict[str, Any], licenses: dict[str, Any]) -> str:
    sources = sorted({e["source"] for e in manifest["splits"].values()})
    configs = hub_configs(manifest)
    src_licenses = sorted({licenses.get(s, {}).get("license", "other") for s in sources})
    header: dict[str, Any] = {
        "license": src_licenses[0] if len(src_licenses) == 1 else "other",
        "task_categories": ["visual-question-answering", "image-text-to-text"],
        "language": ["en"],
        "pretty_name": "VLIR",
        "tags": ["visual-reasoning", "grounding", "chain-of-thought", "vlm-r3"],
        "configs": configs,
    }
    if len(src_licenses) > 1:
        header["license_name"] = "mixed"
        header["license_details"] = "; ".join(f"{s}: {licenses.get(s, {}).get('license', 'other')}" for s in sources)
    return yaml.safe_dump(header, sort_keys=False).strip()


def plots(out: Path, stats: dict[str, SplitStats]) -> list[str]:
    """Write PNG plots into ``out/card/``; returns their paths relative to ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    card = out / "card"
    card.mkdir(parents=True, exist_ok=True)
    written = []
    keys = sorted(stats)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(keys, [stats[k].accepted for k in keys], label="accepted")
    ax.bar(keys, [stats[k].rejected for k in keys], bottom=[stats[k].accepted for k in keys], label="rejected")
    ax.set_ylabel("records")
    ax.set_title("Records per source/split")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    written.append(_save(fig, card / "records.png", out))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    looks = [n for k in keys for n in stats[k].looks]
    axes[0].hist(looks, bins=range(0, (max(looks) if looks else 0) + 2), align="left", rwidth=0.8)
    axes[0].set_xlabel("looks per chain")
    axes[0].set_ylabel("chains")
    axes[0].set_title("Looks per accepted chain")
    ratios = [r for k in keys for r in stats[k].area_ratios]
    axes[1].hist(ratios, bins=area_bins(ratios))
    axes[1].set_xscale("log")  # look boxes are mostly small: linear bins put them all in one or two
    axes[1].set_xlabel("look box area / image area (log scale)")
    axes[1].set_ylabel("looks")
    axes[1].set_title("Size of the looked-at regions")
    written.append(_save(fig, card / "chains.png", out))
    reasons = Counter()
    for k in keys:
        reasons.update(stats[k].reasons)
    if reasons:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        names = [r for r, _ in reasons.most_common()]
        ax.barh(names, [reasons[r] for r in names])
        ax.set_xlabel("rejected records")
        ax.set_title("Why records were rejected")
        written.append(_save(fig, card / "rejections.png", out))
    plt.close("all")
    return written


def area_bins(ratios: list[float], count: int = 12) -> list[float]:
    """Log-spaced bin edges over the data's own range (area ratios span decades: a 40x40 box on a
    1000x800 page is 0.002): with 10 linear bins on [0, 1] all the data sat in 2 of them."""
    import numpy as np

    positive = [r for r in ratios if r > 0]
    if not positive:
        return [1e-3, 1.0]
    low, high = min(positive), max(max(positive), min(positive) * 1.01)
    return [float(x) for x in np.geomspace(low, high, count + 1)]


def _save(fig, path: Path, out: Path) -> str:
    fig.tight_layout()
    # fixed metadata: the same statistics give the same PNG bytes
    fig.savefig(path, dpi=80, metadata={"Software": None})
    return path.relative_to(out).as_posix()


def write_card(out: Path) -> Path:
    out = Path(out)
    manifest = json.loads((out / MANIFEST).read_text())
    data = resources.files("vlir").joinpath("data_cards")
    licenses = yaml.safe_load(data.joinpath("licenses.yaml").read_text())
    template = Template(data.joinpath("card_template.md").read_text())
    stats = collect(out, manifest)
    keys = sorted(stats)
    summary = _table(["source/split", "accepted", "rejected", "acceptance"],
                     [[k, s.accepted, s.rejected, f"{s.accepted / max(1, s.accepted + s.rejected):.0%}"]
                      for k, s in ((k, stats[k]) for k in keys)])
    all_reasons = sorted({r for s in stats.values() for r in s.reasons})
    rejects = (_table(["source/split", *all_reasons], [[k, *[stats[k].reasons.get(r, 0) for r in all_reasons]]
                                                         for k in keys]) if all_reasons else "No record was rejected.")
    chains = _table(["source/split", "looks/chain", "max looks", "box area ratio (median)", "zoom scale (mean)",
                     "answer words (mean)"],
                    [[k, _mean(s.looks), max(s.looks, default=0), _median(s.area_ratios), _mean(s.scales),
                      _mean(s.answer_words)] for k, s in ((k, stats[k]) for k in keys)])
    sources = sorted({e["source"] for e in manifest["splits"].values()})
    licence_rows = [[s, licenses.get(s, {}).get("license", "other"), licenses.get(s, {}).get("terms", ""),
                     licenses.get(s, {}).get("homepage", "")] for s in sources]
    pngs = plots(out, stats)
    text = template.substitute(
        yaml_header=yaml_header(manifest, licenses),
        title="VLIR corpus",
        vlir_version=manifest["vlir_version"],
        annotator=manifest["config"].get("annotator", "?"),
        image_mode="embedded in the shards" if manifest["config"].get("embed_images")
        else "referenced by path under each source root (see `roots` in manifest.json) with their sha256",
        summary_table=summary,
        reject_table=rejects,
        chain_table=chains,
        plots="\n\n".join(f"![{Path(p).stem}]({p})" for p in pngs),
        license_table=_table(["source", "license", "terms", "homepage"], licence_rows),
    )
    path = out / "README.md"
    atomic_write_bytes(path, text.encode())
    return path

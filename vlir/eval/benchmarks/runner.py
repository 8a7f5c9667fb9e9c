"""``vlir eval --benchmark``: roll a benchmark's items through the rollout engine in batches, score
each response by the benchmark's official rule, and write what the number needs to be trusted.

Outputs under ``out``:

* ``predictions.jsonl``: one line per (item, sample): the prompt id, the full response, the crop
  boxes (original pixels), the parsed answer (:func:`vlir.protocol.parse_response`, the tagged
  answer), the extracted answer (the benchmark's official extraction), the score, the labelled
  alternative scores, per-item metrics, and the item's ground truth (answer, category, options,
  target boxes, meta) so ``--predictions`` re-scores without the download or a model;
* ``run.json``: the benchmark and protocol the predictions belong to (a resume with another
  protocol is refused rather than mixed);
* ``scores.json``, ``report.md`` and a PNG (:mod:`vlir.eval.benchmarks.report`).

Resumable: lines are appended and flushed per batch, all samples of an item together; on restart
the finished ids are skipped (a torn last line, or an item with fewer samples than the protocol,
is dropped and recomputed), and ``--limit N`` means the first N items of the reader either way.

Crop hit rate (V*, TreeBench: items with target boxes), per item, over the crops it made:
``crop_hit`` = some crop has IoU >= 0.5 with some target box; ``crop_covers`` = some crop holds
at least 90 % of a target box's area (a zoomed crop around a small object has a low IoU but
covers it); ``crop_best_iou`` = the best IoU. An item without crops scores 0 on all three.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from vlir import geometry, identity
from vlir.eval.benchmarks.base import Benchmark, BenchItem, ImageRef
from vlir.eval.benchmarks.presets import EvalSettings
from vlir.protocol import parse_response
from vlir.records import Box

log = logging.getLogger(__name__)

PREDICTIONS, SCORES, RUN = "predictions.jsonl", "scores.json", "run.json"
HIT_IOU, COVER = 0.5, 0.9


@dataclass
class Response:
    """One sampled answer as the runner needs it (built from a ``vlir.rollout.Trajectory``)."""

    text: str
    boxes: list[Box] = field(default_factory=list)
    finish_reason: str = ""
    tokens: int = 0
    crops_png: list[bytes] = field(default_factory=list)


Generate = Callable[[list[tuple[str, Any]], int], list[list[Response]]]


def engine_generate(engine) -> Generate:
    """Adapt a :class:`vlir.rollout.Rollout` (prompt-major samples) to the runner."""
    def generate(prompts: list[tuple[str, Any]], k: int) -> list[list[Response]]:
        trajs = engine.generate(prompts, num_samples=k)
        out = [[] for _ in prompts]
        for i, t in enumerate(trajs):
            out[i // k].append(Response(t.text, list(t.boxes), t.finish_reason, t.num_sampled,
                                        [c.png for c in t.crops]))
        return out
    return generate


# --------------------------------------------------------------------------------------------
# One row
# --------------------------------------------------------------------------------------------

def item_to_json(item: BenchItem) -> dict[str, Any]:
    return {"answer": item.answer, "category": item.category, "options": list(item.options),
            "target_boxes": [b.as_list() for b in item.target_boxes], "meta": item.meta}


def item_from_json(item_id: str, d: dict[str, Any]) -> BenchItem:
    return BenchItem(id=item_id, question=d.get("question", ""), image=ImageRef(), answer=d["answer"],
                     category=d.get("category", ""), options=tuple(d.get("options", [])),
                     target_boxes=tuple(Box(*b) for b in d.get("target_boxes", [])), meta=d.get("meta", {}))


def crop_hits(targets: Sequence[Box], boxes: Sequence[Box]) -> dict[str, float]:
    best = max((geometry.iou(t, b) for t in targets for b in boxes), default=0.0)
    covers = any(geometry.containment(t, b) >= COVER for t in targets for b in boxes)
    return {"crop_hit": float(best >= HIT_IOU), "crop_covers": float(covers), "crop_best_iou": best}


def score_row(bench: Benchmark, item: BenchItem, text: str, boxes: Sequence[Box]) -> dict[str, Any]:
    """Everything scored about one response (also what ``--predictions`` recomputes). With a
    judge configured (``bench.llm``) every row is judged by it (:meth:`Benchmark.configure`
    refuses a judge where the official rule asks none)."""
    parsed = parse_response(text).tagged_answer
    extracted = bench.extract(item, text, parsed)
    score, judged_by = bench.judge(item, extracted), "rule-based"
    if bench.llm is not None:
        judged_by = bench.llm.model
        llm = bench.llm_judge(item, text, parsed)
        if llm is not None:
            score = float(llm)
    row = {"parsed_answer": parsed, "extracted": extracted, "score": float(score), "judged_by": judged_by,
           "alternatives": bench.alternatives(item, text, parsed),
           "metrics": bench.item_metrics(item, text, boxes)}
    if item.target_boxes:
        row["crop"] = crop_hits(item.target_boxes, boxes)
    return row


def with_judge(bench: Benchmark, judge) -> Benchmark:
    """``bench`` configured with ``judge`` (kept as it is when None or already set)."""
    if judge is None or bench.llm is judge:
        return bench
    return bench.configure(judge=judge, variant=bench.variant, judge_input=bench.judge_input)


def _row(bench, item, sample: int, question: str, resp: Response) -> dict[str, Any]:
    return {"id": item.id, "sample": sample, "prompt": question, "response": resp.text,
            "boxes": [b.as_list() for b in resp.boxes], "crops": len(resp.boxes),
            "finish_reason": resp.finish_reason, "tokens": resp.tokens,
            **score_row(bench, item, resp.text, resp.boxes), "item": item_to_json(item)}


# --------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------

def read_rows(path: Path, samples: int | None = None, repair: bool = False) -> list[dict[str, Any]]:
    """Rows of a predictions file. With ``repair``: drop a torn line and items with fewer than
    ``samples`` rows, and rewrite the file so appending continues from whole items."""
    rows, torn = [], False
    if not path.is_file():
        return rows
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                if not repair:
                    raise ValueError(f"{path}, line {n}: not JSON") from None
                torn = True
    if repair:
        counts = Counter(r["id"] for r in rows)
        keep = [r for r in rows if counts[r["id"]] >= (samples or 1)]
        if torn or len(keep) != len(rows):
            log.warning("%s: dropping %d partial row(s)", path, len(rows) - len(keep) + torn)
            tmp = path.with_suffix(".tmp")
            tmp.write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in keep), encoding="utf-8")
            tmp.replace(path)
        rows = keep
    return rows


def run_identity(bench: Benchmark, protocol: EvalSettings, info: dict[str, Any], root: Path | None = None,
                 out: Path | None = None) -> dict[str, Any]:
    """The run identity (:mod:`vlir.identity`) of an evaluation: the benchmark root's content
    fingerprint, the benchmark, protocol and judge model, the checkpoint's sha256 (``info``'s
    ``model_sha256``, what the CLI computes), the vlir version. The batch size, ``--limit``,
    device and endpoint URLs are not identity (a resume may change them). ``out``: left out of
    the root's fingerprint should it lie inside it."""
    return identity.make(inputs={"root": identity.tree_fingerprint(root, exclude=out)} if root is not None else {},
                         config={"benchmark": bench.name, "protocol": protocol.to_dict(),
                                 "judge": getattr(bench.llm, "model", None)},
                         model=info.get("model_sha256"))


def claim_out(out: Path, bench: Benchmark, protocol: EvalSettings, info: dict[str, Any],
              root: Path | None = None) -> None:
    """Refuse (:class:`vlir.identity.IdentityMismatch`) an ``out`` holding another run, else record
    this one's identity; :func:`run` calls it, and the CLI before it loads the model."""
    out.mkdir(parents=True, exist_ok=True)
    _check_run(out, run_identity(bench, protocol, info, root, out),
               {"model": info.get("model"), "root": str(Path(root).resolve()) if root is not None else None},
               bench, protocol)


def _check_run(out: Path, ident: dict[str, Any], where: dict[str, Any], bench: Benchmark, protocol: EvalSettings) -> None:
    """Record the run's identity in ``run.json``, or refuse a run into ``out`` that is not the one
    its predictions belong to (another model's predictions would be credited to this one)."""
    path = out / RUN
    todo = f"use another --out, or delete {out / PREDICTIONS} and {path} to recompute"
    if path.is_file() and identity.read(path) is None:
        raise ValueError(f"{out} holds a run without a run identity (an older vlir); {todo}")
    recorded = identity.read(path)
    if recorded is not None and recorded.get("model") != ident.get("model"):
        before = json.loads(path.read_text(encoding="utf-8")).get("where", {}).get("model")
        todo = f"its predictions come from --model {before}, not {where.get('model')}; " + todo
    identity.claim(path, ident, todo, what="evaluation", where=where,
                   extra={"benchmark": bench.name, "protocol": protocol.to_dict()})


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

def run(bench: Benchmark, items: Iterable[BenchItem], generate: Generate, out: Path, protocol: EvalSettings, *,
        batch_size: int = 8, limit: int | None = None, judge=None, info: dict[str, Any] | None = None,
        progress: Callable[[int, float], None] | None = None, html: bool = False,
        root: Path | None = None) -> dict[str, Any]:
    """Evaluate, resuming from ``out/predictions.jsonl`` when ``out`` holds the same run
    (:func:`run_identity`; ``root``: the benchmark folder, fingerprinted); returns the scores dict.
    ``judge``: an LLM judge for ``bench`` (or configure it beforehand)."""
    from vlir.eval.benchmarks import report
    from vlir.eval.benchmarks.vstar import strip_direct

    bench = with_judge(bench, judge)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    info = info or {}
    claim_out(out, bench, protocol, info, root)
    rows = read_rows(out / PREDICTIONS, protocol.samples, repair=True)
    done = {r["id"] for r in rows}
    total = sum(r["score"] for r in rows)
    if progress is not None and rows:
        progress(len(done), total / len(rows))
    stream = iter(items if limit is None else itertools.islice(items, limit))
    with open(out / PREDICTIONS, "a", encoding="utf-8") as fh:
        while batch := list(itertools.islice(stream, batch_size)):
            todo = [it for it in batch if it.id not in done]
            if not todo:
                continue
            questions = [strip_direct(it.question) if protocol.strip_direct else it.question for it in todo]
            images = [_open(it) for it in todo]
            results = generate(list(zip(questions, images)), protocol.samples)
            new = []
            for it, q, img, responses in zip(todo, questions, images, results):
                for s, resp in enumerate(responses):
                    new.append(_row(bench, it, s, q, resp))
                    if html:
                        report.save_assets(out, it, img, s, resp)
                done.add(it.id)
            fh.write("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in new))
            fh.flush()
            rows.extend(new)
            total += sum(r["score"] for r in new)
            if progress is not None:
                progress(len(todo), total / len(rows))
    return finish(bench, rows, out, protocol.to_dict(), info, html=html)


def _open(item: BenchItem):
    from vlir.eval.benchmarks.base import BenchmarkLayoutError

    try:
        return item.image.open()
    except (OSError, ValueError) as exc:
        raise BenchmarkLayoutError(f"{item.id}: cannot open its image ({exc})") from None


def rescore(bench: Benchmark, predictions: Path, out: Path, judge=None, info: dict[str, Any] | None = None,
            html: bool = False, known_ids: set[str] | None = None) -> dict[str, Any]:
    """Score saved predictions again (no model, no download): every row's extraction and score
    are recomputed from its stored response and boxes by the benchmark's rules. Rows are checked
    first (:mod:`vlir.eval.benchmarks.predictions`: malformed rows and duplicates refused); with
    ``known_ids`` (the benchmark's items), rows naming other ids are counted and left out."""
    from vlir.eval.benchmarks import predictions as checked

    predictions, out = Path(predictions), Path(out)
    bench = with_judge(bench, judge)
    rows, unknown = checked.drop_unknown(checked.load(predictions), known_ids, predictions)
    fresh = []
    for r in rows:
        item = item_from_json(r["id"], r["item"])
        boxes = [Box(*b) for b in r.get("boxes", [])]
        fresh.append({**r, **score_row(bench, item, r["response"], boxes)})
    run_meta = predictions.parent / RUN
    protocol = json.loads(run_meta.read_text("utf-8")).get("protocol", {}) if run_meta.is_file() else {}
    out.mkdir(parents=True, exist_ok=True)
    if (out / PREDICTIONS).resolve() != predictions.resolve():
        ident = identity.make(inputs={"predictions": identity.file_sha256(predictions)},
                              config={"benchmark": bench.name, "judge": getattr(bench.llm, "model", None)})
        recorded = identity.read(out / RUN)
        if (out / RUN).is_file() and (recorded is None or "predictions" not in recorded.get("inputs", {})):
            raise ValueError(f"{out} holds a model's evaluation ({out / RUN}), which re-scored predictions "
                             "would replace; re-score into another --out")
        (out / RUN).unlink(missing_ok=True)  # a re-score rewrites everything: nothing is resumed
        identity.claim(out / RUN, ident, "use another --out", what="evaluation",
                       where={"predictions": str(predictions.resolve())},
                       extra={"benchmark": bench.name, "protocol": protocol})
        (out / PREDICTIONS).write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in fresh), "utf-8")
    extra = {"rescored_from": str(predictions), **({"unknown_ids": unknown} if known_ids is not None else {})}
    return finish(bench, fresh, out, protocol, {**(info or {}), **extra}, html=html)


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------

def _mean(v: Sequence[float]) -> float:
    return sum(v) / len(v) if v else 0.0


def _std(v: Sequence[float]) -> float:
    if len(v) < 2:
        return 0.0
    m = _mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def _over_samples(bench: Benchmark, by_sample: dict[int, list[tuple[BenchItem, float]]]) -> dict[str, Any]:
    """``aggregate`` per sample; with several samples, the mean (and spread) over them."""
    results = [bench.aggregate([i for i, _ in pairs], [s for _, s in pairs]) for _, pairs in sorted(by_sample.items())]
    if len(results) == 1:
        return results[0]
    overall = [r["overall"] for r in results]
    cats: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for c, v in r.get("categories", {}).items():
            cats[c].append(v["score"])
    first = results[0]
    return {**first, "overall": _mean(overall), "overall_std": _std(overall), "per_sample": overall,
            "categories": {c: {"score": _mean(v), "std": _std(v), "n": first["categories"].get(c, {}).get("n", 0)}
                           for c, v in cats.items()}}


def summarize(bench: Benchmark, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The official figure (per sample, then averaged), the labelled alternatives, the per-item
    metrics' means, crop hit rates and trajectory statistics."""
    items = {r["id"]: item_from_json(r["id"], r["item"]) for r in rows}
    official: dict[int, list] = defaultdict(list)
    alts: dict[str, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    metrics: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    crops: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        it = items[r["id"]]
        official[r.get("sample", 0)].append((it, r["score"]))
        for name, v in r.get("alternatives", {}).items():
            alts[name][r.get("sample", 0)].append((it, v))
        for name, v in r.get("metrics", {}).items():
            metrics[name]["all"].append(v)
            metrics[name][it.category].append(v)
        for name, v in r.get("crop", {}).items():
            crops[name]["all"].append(v)
            crops[name][it.category].append(v)
    n = len(rows)
    return {
        "scores": _over_samples(bench, official),
        "alternatives": {k: _over_samples(bench, v) for k, v in sorted(alts.items())},
        "metrics": {k: {c: _mean(v) for c, v in d.items()} for k, d in sorted(metrics.items())},
        "crop_hits": {k: {c: {"rate": _mean(v), "n": len(v)} for c, v in d.items()} for k, d in sorted(crops.items())},
        "trajectories": {"rows": n, "items": len(items), "crops_per_answer": _mean([r.get("crops", 0) for r in rows]),
                         "tokens_per_answer": _mean([r.get("tokens", 0) for r in rows]),
                         "finish_reasons": dict(Counter(r.get("finish_reason", "") for r in rows)),
                         "judged_by": dict(Counter(r.get("judged_by", "rule-based") for r in rows))},
    }


def finish(bench: Benchmark, rows: list[dict[str, Any]], out: Path, protocol: dict[str, Any],
           info: dict[str, Any], html: bool = False) -> dict[str, Any]:
    from vlir import __version__
    from vlir.eval.benchmarks import report

    judged = {**bench.llm.describe(), "input": bench.judge_input} if bench.llm is not None else "rule-based"
    scores = {"benchmark": bench.name, "official_script": bench.official, "judge": judged,
              **summarize(bench, rows),
              "protocol": {**protocol, "judge": judged, "vlir_version": __version__, **info}}
    (out / SCORES).write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    report.write_report(bench, scores, out)
    if html:
        report.write_html(out, rows)
    return scores


"""``vlir eval``: run the rollout engine over VLIR shards (or a source adapter's samples) and score.

Items stream in and predictions stream out (``predictions.jsonl``, one line per question, written
as each batch finishes), so a long evaluation runs in constant memory. The scores use the
source's own metric through :func:`vlir.metrics.score` (TextVQA VQA accuracy, DocVQA/InfoVQA
ANLS, GQA exact match, ...); ``scores.json`` adds, per source, how often the model looked (crops
per answer), how much it zoomed (mean crop-box area over image area) and why trajectories ended.

The answer and the boxes are the engine's (:attr:`Trajectory.answer` is :func:`vlir.protocol.
extract_answer` of its text, the rule the R-GRPO rewards use too); the loop settings the engine ran
with are recorded under ``agent`` in ``scores.json``. The engine is passed in, so this module
imports neither torch nor transformers.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from vlir import geometry, metrics, source_table
from vlir.records import Sample

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from vlir.rollout import Rollout, Trajectory

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.jsonl"
SCORES = "scores.json"

Item = tuple[Sample, "Image.Image"]


def metric_name(source: str) -> str:
    """The metric ``vlir eval`` reports for ``source`` (:func:`vlir.source_table.metric_name`)."""
    return source_table.metric_name(source)


def score_answer(source: str, pred: str | None, answers: Iterable[str]) -> float:
    """The source's official metric for one prediction (``metrics.score(..., official=True)``:
    the numbers published tables use); sources without an official metric (``synth``) use exact
    match. A missing answer scores 0. An official metric defined only for a number of references
    (TextVQA's: the ten human answers) scores a record with another count (a re-annotated or
    converted set) by the lenient rule instead of failing the whole evaluation (``strict=False``)."""
    answers = list(answers)
    if pred is None or not answers:
        return 0.0
    if source_table.rule(source) is not None:
        return float(metrics.score(source, pred, answers, official=True, strict=False))
    return float(any(metrics.exact_match(pred, a) for a in answers))


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------

def find_output_root(path: Path) -> Path | None:
    """The vlir output folder (the one holding ``manifest.json``) above a split folder or shard."""
    for parent in [path, *path.parents][:4]:
        if (parent / "manifest.json").is_file():
            return parent
    return None


def shard_items(data: Path) -> Iterator[Item]:
    """``(sample, original image)`` of each accepted record under ``data`` (a
    ``<out>/<source>/<split>`` folder or one ``part-*.parquet``); images come embedded or from the
    source root named in the manifest."""
    from vlir import images
    from vlir.corpus import shards

    data = Path(data)
    root = find_output_root(data.resolve())
    corpus = shards.Corpus(root) if root is not None else None
    for record in shards.read_records(data):
        if corpus is not None:
            image = corpus.image(record)
        elif record.image_bytes is not None:
            image = images.decode_image(record.image_bytes, record.sample.id)
        else:
            raise FileNotFoundError(f"{data}: no manifest.json above it and no embedded image for "
                                    f"{record.sample.id}")
        yield record.sample, image


def source_items(name: str, root: Path, split: str, **options: Any) -> Iterator[Item]:
    """``(sample, original image)`` straight from a source adapter over an official download
    (invalid records are skipped with a warning: they have nothing to evaluate)."""
    from vlir import images
    from vlir.records import Invalid
    from vlir.sources.registry import get_source

    source = get_source(name)
    source.check_split(split)
    for sample in source.iter_samples(Path(root), split, **options):
        if isinstance(sample, Invalid):
            log.warning("skipping invalid sample %s: %s", sample.id, sample.detail)
            continue
        path = images.safe_path(Path(root), sample.image)
        yield sample, images.decode_image(images.read_image_bytes(path, sample.image), sample.image)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------

@dataclass
class _Tally:
    n: int = 0
    score: float = 0.0
    crops: int = 0
    area_sum: float = 0.0
    boxes: int = 0
    tokens: int = 0
    finish: Counter = field(default_factory=Counter)


def prediction_row(sample: Sample, traj: "Trajectory") -> dict[str, Any]:
    """One line of ``predictions.jsonl``."""
    value = score_answer(sample.source, traj.answer, sample.answers)
    return {
        "id": sample.id, "source": sample.source, "question": sample.question, "answer": traj.answer,
        "answers": list(sample.answers), "score": value, "boxes": [b.as_list() for b in traj.boxes],
        "crops": len(traj.crops), "bad_calls": len(getattr(traj, "bad_calls", ())), "tokens": traj.num_sampled,
        "total_tokens": len(traj.token_ids), "finish_reason": traj.finish_reason,
    }


RUN = "run.json"


def claim_out(out_dir: Path, inputs: Path, model: Path | str, config: dict[str, Any]) -> None:
    """Record what this evaluation is (:mod:`vlir.identity`: the data's fingerprint, the model's
    sha256 — or its name on a server —, the settings) in ``out_dir/run.json``, or refuse an
    ``out_dir`` holding another one, before any model loads: ``vlir eval`` rewrites its
    predictions, and another model's or data's results must not be replaced by surprise."""
    from vlir import identity

    model_path = Path(model)
    inputs = Path(inputs)
    data = (identity.data_fingerprint(inputs) if (inputs / "manifest.json").is_file()
            else identity.tree_fingerprint(inputs, exclude=out_dir))  # OUT may lie inside the data folder
    ident = identity.make(inputs={"data": data}, config=config,
                          model=identity.model_sha256(model_path) if model_path.is_dir() else str(model))
    identity.claim(Path(out_dir) / RUN, ident, "use another --out (delete the folder to evaluate into it again)",
                   what="evaluation", where={"model": str(model), "data": str(Path(inputs).resolve())})


def evaluate(engine: "Rollout", items: Iterable[Item], out_dir: Path, limit: int | None = None,
             batch_size: int = 8, on_batch: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Roll out every item (``limit`` first ones), write ``predictions.jsonl`` and ``scores.json``
    under ``out_dir``, and return the scores dict. ``on_batch(n)`` reports progress."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    stream = iter(items if limit is None else itertools.islice(items, limit))
    with open(out_dir / PREDICTIONS, "w", encoding="utf-8") as fh:
        while batch := list(itertools.islice(stream, batch_size)):
            trajs = engine.generate([(s.question, img) for s, img in batch])
            for (sample, image), traj in zip(batch, trajs):
                row = prediction_row(sample, traj)
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
                t = tallies[sample.source]
                t.n += 1
                t.score += row["score"]
                t.crops += row["crops"]
                t.tokens += row["tokens"]
                t.finish[traj.finish_reason] += 1
                for box in traj.boxes:
                    t.area_sum += geometry.area_ratio(box, *image.size)
                    t.boxes += 1
            fh.flush()
            if on_batch is not None:
                on_batch(len(batch))
    scores = {"sources": {src: _summary(src, t) for src, t in sorted(tallies.items())},
              "n": sum(t.n for t in tallies.values()), "agent": getattr(engine, "settings", None)}
    (out_dir / SCORES).write_text(json.dumps(scores, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return scores


def _summary(source: str, t: _Tally) -> dict[str, Any]:
    return {
        "metric": metric_name(source), "score": t.score / t.n if t.n else 0.0, "n": t.n,
        "crops_per_answer": t.crops / t.n if t.n else 0.0,
        "box_area_ratio": t.area_sum / t.boxes if t.boxes else None,
        "tokens_per_answer": t.tokens / t.n if t.n else 0.0, "finish_reasons": dict(sorted(t.finish.items())),
    }


def format_table(scores: dict[str, Any]) -> str:
    """The score table ``vlir eval`` prints."""
    head = f"{'source':<18}{'metric':<18}{'score':>8}{'n':>7}{'crops/ans':>11}{'box area':>10}"
    lines = [head, "-" * len(head)]
    for source, s in scores["sources"].items():
        area = "-" if s["box_area_ratio"] is None else f"{s['box_area_ratio']:.3f}"
        lines.append(f"{source:<18}{s['metric']:<18}{100 * s['score']:>8.2f}{s['n']:>7}"
                     f"{s['crops_per_answer']:>11.2f}{area:>10}")
    return "\n".join(lines)

"""CV-Bench (Cambrian-1's vision-centric benchmark): 2,638 multiple-choice questions, 2D (spatial
relation, counting; ADE20K and COCO images) and 3D (depth order, relative distance; Omni3D images).

Official layout (https://huggingface.co/datasets/nyu-visionx/CV-Bench)::

    test_2d.jsonl, test_3d.jsonl     idx, type, task, question, choices, answer "(A)", prompt,
                                     filename "img/2D/count/ade20k_10.png", source, ...
    img/2D/..., img/3D/...
    test_2d.parquet, test_3d.parquet the same rows with ``image`` {bytes, path} (read when the
                                     jsonl files are absent)

The older single ``test.jsonl`` / ``test.parquet`` is read too when the split files are absent.

Scoring: the overall figure is the dataset card's formula (README "Accuracy")::

    CV-Bench = ( (acc[ADE20K] + acc[COCO]) / 2  +  acc[Omni3D] ) / 2

with per-source, per-type (2D, 3D) and per-task accuracies beside it. The card leaves the
per-item rule to the user; vlir uses the authors' own multiple-choice rule (``cambrian-mllm/
cambrian`` ``eval/eval/coco/coco_test.py`` ``extract_mcq_answer``): lower-case, keep what follows
the last "answer is"/"answer:", strip a trailing ``.``, leading ``(`` and trailing ``)``, then
**keep only the first character** (so "B. left" -> "b", and a reply that starts with a word is
judged on its first letter), compared with the letter inside "(A)" (quirk kept: the keywords
are tried in order, so "The answer is: B" is split at "answer is" and leaves ": b", read as ":").
lmms-eval's ``cv_bench`` uses a leading-letter regex instead (same answers for "A", "(A)", "A."
and "A) text").

VLM-R3 (``src/eval/test_cvbench_r3.py``) reads only ``test_2d.jsonl`` and reports a plain mean
over its items, graded by its ``acc_verifier``; ``aggregate`` reports that figure as
``vlmr3_2d_mean`` (labelled), and ``configure(variant="vlmr3")`` grades items with its rule.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Iterator, Sequence

from vlir.eval.benchmarks.base import Benchmark, BenchItem, BenchmarkLayoutError, ImageRef, data_path, register
from vlir.eval.benchmarks.mmvp import llm_callable, vlmr3_scoring, vlmr3_student_answer, vlmr3_verify

log = logging.getLogger(__name__)

INSTRUCTION = "Answer with the option's letter from the given choices directly."
SOURCES_2D = ("ADE20K", "COCO")
SOURCE_3D = "Omni3D"
_FIELDS = ("idx", "type", "task", "choices", "answer", "prompt", "source")


def cambrian_letter(text: str) -> str:
    """``extract_mcq_answer`` of Cambrian's coco_test.py (see the module docstring)."""
    text = text.lower().strip()
    for keyword in ("answer is", "answer is:", "answer:"):
        if keyword in text:
            text = text.split(keyword)[-1]
    text = text.strip().rstrip(".").lstrip("(").rstrip(")")
    return text[0] if len(text) > 1 else text


def cvbench_score(by_source: dict[str, float]) -> float:
    """The card's formula from per-source accuracies (all three sources must be present)."""
    return ((by_source["ADE20K"] + by_source["COCO"]) / 2 + by_source["Omni3D"]) / 2


@register
class CVBench(Benchmark):
    """CV-Bench reader and scorer; ``configure()`` picks the variant and VLM-R3's LLM judge."""

    name = "cvbench"
    official = "nyu-visionx/CV-Bench README (Accuracy); item rule: cambrian eval/eval/coco/coco_test.py"
    variants = ("official", "vlmr3")
    judged_variants = frozenset({"vlmr3"})
    no_judge_reason = "its official rule (the card's accuracy, Cambrian's extract_mcq_answer) asks no LLM"

    @property
    def scoring(self) -> str:
        if self.variant == "vlmr3":
            return vlmr3_scoring("test_cvbench_r3.py", self.llm is not None)
        return "rule-based first-letter match (Cambrian coco_test.py extract_mcq_answer)"

    # --- reader ----------------------------------------------------------------------------------

    def items(self, root: Path) -> Iterator[BenchItem]:
        root = Path(root)
        files = self._files(root)
        for path in files:
            rows = _jsonl_rows(path) if path.suffix == ".jsonl" else _parquet_rows(path)
            for where, row in rows:
                yield self._item(root, path, where, row)

    def _files(self, root: Path) -> list[Path]:
        for ext in (".jsonl", ".parquet"):
            split = [root / f"test_{t}{ext}" for t in ("2d", "3d")]
            present = [p for p in split if p.is_file()]
            if present:
                if len(present) == 1:
                    log.warning("cvbench: only %s under %s: the official figure needs both 2D and 3D",
                                present[0].name, root)
                return present
            if (root / f"test{ext}").is_file():
                return [root / f"test{ext}"]
        raise BenchmarkLayoutError(f"{root / 'test_2d.jsonl'}: not found (CV-Bench expects test_2d/test_3d "
                                   f".jsonl with img/, or the .parquet files, under --root)")

    def _item(self, root: Path, path: Path, where: str, row: dict[str, Any]) -> BenchItem:
        missing = [f for f in _FIELDS if f not in row]
        if missing:
            raise BenchmarkLayoutError(f"{path}: {where}: missing field(s) {missing}")
        answer = str(row["answer"]).strip()
        if len(answer) != 3 or not (answer[0] == "(" and answer[2] == ")"):
            raise BenchmarkLayoutError(f"{path}: {where}: answer {answer!r} is not '(X)'")
        image = row.get("image")
        if isinstance(image, dict) and image.get("bytes"):
            ref = ImageRef(data=image["bytes"])
        else:
            file = data_path(root, str(row.get("filename") or ""), f"{path.name}: item {row['idx']}")
            if not row.get("filename") or not file.is_file():
                raise BenchmarkLayoutError(f"{file}: image of item {row['idx']} ({path.name}) not found")
            ref = ImageRef(path=file)
        return BenchItem(
            id=f"cvbench/{row['type']}/{row['idx']}", question=f"{row['prompt']}\n{INSTRUCTION}",
            image=ref, answer=answer[1].lower(), category=f"{row['type']}/{row['task']}",
            options=tuple(str(c) for c in row["choices"]),
            meta={"idx": row["idx"], "type": row["type"], "task": row["task"], "source": row["source"],
                  "answer_raw": answer, "prompt": row["prompt"]})

    def write_sample(self, root: Path, n: int = 8, seed: int = 0) -> None:
        """``n`` items spread over the three sources, as ``test_2d.jsonl`` / ``test_3d.jsonl`` + img/."""
        from PIL import Image, ImageDraw

        root = Path(root)
        specs = [("2D", "Count", "ADE20K"), ("2D", "Relation", "COCO"), ("3D", "Depth", "Omni3D")]
        out: dict[str, list[dict[str, Any]]] = {"2D": [], "3D": []}
        for i in range(max(n, 3)):
            kind, task, source = specs[(i + seed) % 3]
            count = 1 + (i + seed) % 3
            choices = [str(count), str(count + 1), str(count + 2), "0"]
            rel = f"img/{kind}/{task.lower()}/{source.lower()}_{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            img = Image.new("RGB", (160, 120), (240, 240, 240))
            draw = ImageDraw.Draw(img)
            for k in range(count):
                draw.ellipse((10 + 45 * k, 40, 45 + 45 * k, 75), fill=(30, 60, 200))
            img.save(root / rel)
            question = "How many blue circles are in the image?"
            prompt = question + " Select from the following choices.\n" + "\n".join(
                f"({chr(65 + k)}) {c}" for k, c in enumerate(choices))
            out[kind].append({"idx": i, "type": kind, "task": task, "question": question,
                              "choices": choices, "answer": "(A)", "prompt": prompt, "filename": rel,
                              "source": source, "source_dataset": source, "source_filename": rel})
        for kind, rows in out.items():
            with open(root / f"test_{kind.lower()}.jsonl", "w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in rows)

    # --- scoring ---------------------------------------------------------------------------------

    def extract(self, item: BenchItem, response: str, answer: str | None) -> str:
        if self.variant == "vlmr3":
            return vlmr3_student_answer(response, answer)
        return cambrian_letter(answer if answer is not None else response)

    def judge(self, item: BenchItem, extracted: str) -> float:
        if self.variant == "vlmr3":
            return vlmr3_verify(extracted, item.meta["answer_raw"], item.meta["prompt"], llm_callable(self))
        return float(extracted == item.answer)

    def aggregate(self, items: Sequence[BenchItem], scores: Sequence[float]) -> dict[str, Any]:
        groups: dict[str, dict[str, list[float]]] = {"source": {}, "type": {}, "task": {}}
        for it, s in zip(items, scores):
            groups["source"].setdefault(it.meta["source"], []).append(s)
            groups["type"].setdefault(it.meta["type"], []).append(s)
            groups["task"].setdefault(f"{it.meta['type']}/{it.meta['task']}", []).append(s)
        acc = {g: {k: sum(v) / len(v) for k, v in d.items()} for g, d in groups.items()}
        src = acc["source"]
        complete = all(s in src for s in (*SOURCES_2D, SOURCE_3D))
        acc_2d = [src[s] for s in SOURCES_2D if s in src]
        type_2d = sum(acc_2d) / len(acc_2d) if acc_2d else None
        type_3d = src.get(SOURCE_3D)
        parts = [p for p in (type_2d, type_3d) if p is not None]
        overall = cvbench_score(src) if complete else (sum(parts) / len(parts) if parts else 0.0)
        plain_2d = groups["type"].get("2D", [])
        return {
            "overall": overall, "n": len(scores), "scoring": self.scoring,
            "metric": "((ADE20K + COCO)/2 + Omni3D)/2 (official)" if complete else
                      "INCOMPLETE: mean of the available type accuracies (a source is missing)",
            "official_complete": complete,
            "accuracy_2d": type_2d, "accuracy_3d": type_3d,
            "sources": {k: {"score": v, "n": len(groups["source"][k])} for k, v in sorted(src.items())},
            "vlmr3_2d_mean": sum(plain_2d) / len(plain_2d) if plain_2d else None,
            "vlmr3_2d_mean_label": "plain mean over the 2D items (what VLM-R3's test_cvbench_r3.py reports)",
            "categories": {k: {"score": v, "n": len(groups["task"][k])}
                           for k, v in sorted(acc["task"].items())},
        }


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise BenchmarkLayoutError(f"{path}: line {number} is not JSON ({exc})") from None
            if not isinstance(row, dict):
                raise BenchmarkLayoutError(f"{path}: line {number} is not a JSON object")
            yield f"line {number}", row


def _parquet_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise BenchmarkLayoutError(f"{path}: not a readable parquet file ({exc})") from None
    row_number = 0
    for batch in pf.iter_batches(batch_size=64):
        for row in batch.to_pylist():
            row_number += 1
            yield f"row {row_number}", row

"""GQA: balanced questions with their semantic programs, evidence from the scene graphs.

Official layout (https://cs.stanford.edu/people/dorarad/gqa/download.html), found under the root or
one folder below it (``questions/``, ``sceneGraphs/``...):

- ``{split}_balanced_questions.json``: a dict keyed by question id; each value has ``imageId``,
  ``question``, ``answer``, ``fullAnswer``, ``semantic`` (the program: ``operation``,
  ``dependencies``, ``argument`` where object arguments end in ``"name (objectId)"``),
  ``semanticStr``, ``types``, ``annotations`` (``question``/``answer``/``fullAnswer``: token index
  ``"i"`` or span ``"i:j"`` -> objectId). Test splits carry no answer.
  With ``question_set="all"``: ``{split}_all_questions.json``, or for train the ten files of
  ``train_all_questions/``.
- ``{split}_sceneGraphs.json`` (train and val only; optional): imageId -> ``width``, ``height``,
  ``objects`` {objectId: ``name``, ``x``, ``y``, ``w``, ``h`` (pixels), ``attributes``,
  ``relations``}.
- ``images/<imageId>.jpg``.

Each question becomes a :class:`Sample` whose evidence is the scene-graph objects its annotations
point to (in the order question, answer, fullAnswer; by token position within each), labelled
with their names. ``meta["object_index"]`` maps each objectId to its evidence index, so the grounded
annotator can walk the program (:func:`program_object_ids` reads an argument's ids). Without a
scene graph the evidence is empty, the size comes from the image header, and
``stats["missing_scene_graph"]`` counts the sample.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vlir.images import ImageError
from vlir.records import Region, Sample
from vlir.sources.base import (Reading, RecordError, Source, SourceError, find_dir, find_file,
                               relative_to_root)
from vlir.jsonstream import iter_object_spans, read_object_span
from vlir.sources.scenegraph import SceneGraphIndex
from vlir.sources.support import ImageFiles, object_region

log = logging.getLogger(__name__)

ANNOTATION_PARTS = ("question", "answer", "fullAnswer")
META_FIELDS = ("semantic", "semanticStr", "types", "fullAnswer", "annotations")
_ARGUMENT_IDS = re.compile(r"(?:^|\s)\(([^()]*)\)\s*$")


def program_object_ids(argument: str) -> list[str]:
    """The object ids a GQA program argument names: ``"pond (1039893)"`` -> ``["1039893"]``,
    ``"cart,near,s (1039872)"`` -> ``["1039872"]``, ``"cup (-)"`` -> ``[]``, ``"x (1,2)"`` ->
    ``["1", "2"]``. Attribute arguments such as ``"not(metal)"`` name none."""
    match = _ARGUMENT_IDS.search(argument or "")
    if not match:
        return []
    return [part.strip() for part in match.group(1).split(",") if part.strip() not in ("", "-")]


def _span_start(span: str) -> int:
    try:
        return int(str(span).split(":", 1)[0])
    except ValueError:
        return 1 << 30


def annotated_object_ids(annotations: dict[str, Any]) -> list[str]:
    """Distinct objectIds the annotations point to, in evidence order. Raises ValueError when the
    annotations are not shaped as GQA's."""
    seen: dict[str, None] = {}
    for part in ANNOTATION_PARTS:
        spans = annotations.get(part) or {}
        if not isinstance(spans, dict):
            raise ValueError(f"annotations.{part} is a {type(spans).__name__}, not an object")
        for span, value in sorted(spans.items(), key=lambda kv: (_span_start(kv[0]), kv[0])):
            values = value if isinstance(value, list) else str(value).split(",")
            for object_id in values:
                object_id = str(object_id).strip()
                if object_id and object_id != "-":
                    seen.setdefault(object_id, None)
    return list(seen)


def _question_files(root: Path, split: str, question_set: str, explicit: Any) -> list[Path]:
    if explicit:
        paths = explicit if isinstance(explicit, (list, tuple)) else [explicit]
        return [find_file(root, [], explicit=p) for p in paths]
    if question_set == "balanced":
        return [find_file(root, [f"{split}_balanced_questions.json"])]
    if question_set != "all":
        raise SourceError(None, f"question_set must be 'balanced' or 'all', got {question_set!r}")
    single = find_file(root, [f"{split}_all_questions.json"], required=False)
    if single:
        return [single]
    folder = find_dir(root, [f"{split}_all_questions"], required=False)
    parts = sorted(folder.glob(f"{split}_all_questions_*.json"),
                   key=lambda p: _span_start(p.stem.rsplit("_", 1)[-1])) if folder else []
    if not parts:
        raise SourceError(root, f"neither {split}_all_questions.json nor {split}_all_questions/ found")
    return parts


class GQASource(Source):
    name = "gqa"
    title = "GQA balanced questions with scene-graph evidence"
    splits = ("train", "val", "testdev", "test", "challenge", "submission")
    expected_files = (
        "{split}_balanced_questions.json (questions1.2.zip; or questions/)",
        "{split}_sceneGraphs.json (sceneGraphs.zip; train and val only; optional)",
        "images/<imageId>.jpg (images.zip)",
    )
    homepage = "https://cs.stanford.edu/people/dorarad/gqa/download.html"
    license = "CC BY 4.0 (questions, scene graphs); images from Visual Genome (CC BY 4.0)"

    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> "_Reading":
        """Options: ``questions`` (path or list of paths), ``scene_graphs`` (path; ``False`` to
        ignore the scene graphs), ``images`` (folder under the root), ``question_set``
        (``balanced``, the default, or ``all``)."""
        files = _question_files(root, split, options.get("question_set", "balanced"),
                                options.get("questions"))
        graphs = self._scene_graphs(root, split, options.get("scene_graphs"), stats)
        return _Reading(root, split, stats, files, graphs, self._images_rel(root, options.get("images")),
                        ImageFiles(root))

    spans = True

    def records(self, reading: Reading, path: Path) -> Iterator[tuple[str, Any]]:
        return ((key, record) for key, record, _span in iter_object_spans(path))

    def record_spans(self, reading: Reading, path: Path) -> Iterator[tuple[str, Any, tuple[int, int]]]:
        return iter_object_spans(path)

    def reread(self, reading: Reading, fh, span: tuple[int, int]) -> tuple[str, Any]:
        return read_object_span(fh, span)

    def record_files(self, root: Path, split: str, **options: Any) -> list[Path]:
        self.check_split(split)  # the question files only: the scene graphs can be GBs
        return _question_files(Path(root), split, options.get("question_set", "balanced"), options.get("questions"))

    @staticmethod
    def _scene_graphs(root: Path, split: str, explicit: Any, stats: Counter) -> SceneGraphIndex | None:
        if explicit is False:
            return None
        path = find_file(root, [f"{split}_sceneGraphs.json"], explicit=explicit or None, required=False)
        if path is None:
            log.warning("gqa %s: no %s_sceneGraphs.json under %s: evidence will be empty", split,
                        split, root)
            stats["scene_graph_file_missing"] = 1
            return None
        return SceneGraphIndex.build(path, stats)

    @staticmethod
    def _images_rel(root: Path, explicit: Any) -> str:
        folder = Path(explicit) if explicit else find_dir(root, ["images"], required=False)
        if folder is None:
            return "images"
        try:
            return relative_to_root(root, folder)
        except ValueError:
            raise SourceError(folder, f"the images folder must be inside the source root {root}") from None

    def parse(self, reading: "_Reading", path: Path, qid: str, record: Any) -> Sample:
        split, stats, graphs = reading.split, reading.stats, reading.graphs
        if not isinstance(record, dict):
            raise RecordError(f"is a {type(record).__name__}, not an object")
        question, image_id = record.get("question"), record.get("imageId")
        if not isinstance(question, str) or not question.strip():
            raise RecordError("missing or empty 'question'")
        if not isinstance(image_id, (str, int)) or isinstance(image_id, bool) or str(image_id) == "":
            raise RecordError("missing or invalid 'imageId'")
        image_id = str(image_id)
        answer = record.get("answer")
        if answer is not None and not isinstance(answer, str):
            raise RecordError(f"'answer' is a {type(answer).__name__}, not a string")
        semantic = record.get("semantic")
        if semantic is not None and not isinstance(semantic, list):
            raise RecordError("'semantic' is not a list")
        annotations = record.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise RecordError("'annotations' is not an object")
        try:
            object_ids = annotated_object_ids(annotations)
        except ValueError as exc:
            raise RecordError(str(exc)) from None

        image = f"{reading.images_rel}/{image_id}.jpg"
        size = graphs.image_size(image_id) if graphs is not None else None
        try:
            if size is None:
                stats["missing_scene_graph"] += 1
                width, height = reading.image_files.size(image)
            else:
                reading.image_files.check(image)
                width, height = size
        except ImageError as exc:
            raise RecordError(str(exc), exc.reason, image=image) from None

        evidence: list[Region] = []
        object_index: dict[str, int] = {}
        if size is not None:
            for object_id, obj in zip(object_ids, graphs.objects(image_id, object_ids)):
                if obj is None:
                    stats["missing_scene_graph_object"] += 1
                    continue
                region = object_region(obj.x, obj.y, obj.w, obj.h, obj.name, width, height, stats)
                if region is not None:
                    object_index[object_id] = len(evidence)
                    evidence.append(region)
        meta = {"question_id": qid, "image_id": image_id}
        meta.update({k: record[k] for k in META_FIELDS if k in record})
        meta["object_index"] = object_index
        return Sample(id=f"{self.name}/{split}/{qid}", source=self.name, split=split, image=image,
                      width=int(width), height=int(height), question=question.strip(),
                      answers=(answer,) if answer else (), evidence=tuple(evidence), meta=meta)

    def write_sample_tree(self, out: Path, per_split: int, seed: int) -> None:
        from vlir.sources.samples.gqa import write_gqa_tree

        write_gqa_tree(Path(out), per_split, seed)


@dataclass
class _Reading(Reading):
    graphs: SceneGraphIndex | None
    images_rel: str
    image_files: ImageFiles

    def for_tasks(self) -> "_Reading":
        return dataclasses.replace(super().for_tasks(), image_files=ImageFiles(self.root))

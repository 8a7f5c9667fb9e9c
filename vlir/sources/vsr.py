"""VSR (Visual Spatial Reasoning): a caption about two objects, true or false for the image.

Official layout (https://github.com/cambridgeltl/visual-spatial-reasoning), found under the root or
one folder below it:

- ``splits/random/{train,dev,test}.jsonl`` and ``splits/zeroshot/{train,dev,test}.jsonl``: one JSON
  object per line with ``image`` (a COCO 2017 file name), ``image_link``, ``caption``, ``label``
  (1 = true), ``relation``, ``annotator_id``, ``vote_true_validator_id`` /
  ``vote_false_validator_id`` (in the real files *strings* such as ``"[2, 9]"``) and, in the random
  splits only, ``reference_frame``; the zeroshot splits carry ``subj`` / ``obj``.
- images: COCO 2017 ``train2017/`` or ``val2017/`` (as ``image_link`` says), or VSR's own flat
  ``images/`` folder.
- optional evidence: COCO ``annotations/instances_{train,val}2017.json``.

Split names: ``random/train`` ... ``zeroshot/test``; plain ``train``/``dev``/``test`` mean the random
ones, and ``val`` means ``random/dev`` (so a pipeline can ask every source for train/val).
The sample id is ``vsr/<split>/<line index>`` (0-based line of the file: stable for a release).

The question is the caption as a true/false statement, answers ``["true"]`` or ``["false"]``.
Evidence: the largest COCO box of the subject's category and of the object's (another instance
when both are the same category); the names come from ``subj``/``obj`` or, for the random splits,
from the caption around the relation (:func:`derive_subject_object`); a name that matches no
category of the image exactly takes the closest one (the real zeroshot data has ``"andbag"``).
Without the instances file the evidence is empty, the size comes from the image header and
``stats["missing_instances"]`` counts the sample; a missing image is ``Invalid("missing_image")``.
"""

from __future__ import annotations

import difflib
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from vlir.images import ImageError
from vlir.records import Region, Sample
from vlir.sources.base import Reading, RecordError, Source, find_dir, find_file, relative_to_root
from vlir.sources.coco import CocoImage, load_instances
from vlir.jsonstream import BadLine, iter_jsonl
from vlir.sources.support import ImageFiles, object_region

log = logging.getLogger(__name__)

QUESTION_TEMPLATE = 'Is the following statement about the image true or false? "{caption}"'
CANONICAL = {"train": "random/train", "dev": "random/dev", "test": "random/test", "val": "random/dev"}
SUBSETS = ("train2017", "val2017")
_LINK_SUBSET = re.compile(r"(train2017|val2017)/")
_LEADING = re.compile(r"^(the|a|an)\s+", re.I)
_TRAILING = re.compile(r"\s+(is|are|was|were|has|have)(\s+not)?$", re.I)
VALIDATOR_FIELDS = ("vote_true_validator_id", "vote_false_validator_id")


def derive_subject_object(caption: str, relation: str) -> tuple[str, str] | None:
    """``("person", "refrigerator")`` from ``"The person is inside the refrigerator."`` and
    ``"inside"``: the noun phrases before and after the relation, articles and the copula removed.
    None when the relation is not in the caption."""
    text = caption.strip().rstrip(".").strip()
    match = re.search(rf"(?<!\w){re.escape(relation.strip())}(?!\w)", text, re.I)
    if not match:
        return None
    subj = _TRAILING.sub("", _LEADING.sub("", text[:match.start()].strip()))
    obj = _LEADING.sub("", text[match.end():].strip())
    return (subj, obj) if subj and obj else None


def _validators(value: Any) -> list[int]:
    """The validator id lists: real lines hold them as strings (``"[2, 9]"``)."""
    if isinstance(value, str):
        value = json.loads(value)
    if not isinstance(value, list) or not all(isinstance(v, int) for v in value):
        raise ValueError("not a list of integers")
    return value


def parse_record(record: dict[str, Any]) -> dict[str, Any]:
    """Check and normalise one line; raises ValueError saying what is wrong."""
    out: dict[str, Any] = {}
    for key in ("image", "caption", "relation"):
        if not isinstance(record.get(key), str) or not record[key].strip():
            raise ValueError(f"missing or empty {key!r}")
        out[key] = record[key].strip()
    label = record.get("label")
    if label not in (0, 1) or isinstance(label, float):
        raise ValueError(f"'label' must be 0 or 1, got {label!r}")
    out["label"] = int(label)
    for key in VALIDATOR_FIELDS:
        if key in record:
            try:
                out[key] = _validators(record[key])
            except (ValueError, json.JSONDecodeError):
                raise ValueError(f"{key!r} is not a list of ids: {record[key]!r}") from None
    subj, obj = record.get("subj"), record.get("obj")
    if isinstance(subj, str) and isinstance(obj, str) and subj.strip() and obj.strip():
        out["subj"], out["obj"], out["subj_obj_from"] = subj.strip(), obj.strip(), "annotation"
    else:
        derived = derive_subject_object(out["caption"], out["relation"])
        out["subj"], out["obj"] = derived or (None, None)
        out["subj_obj_from"] = "caption" if derived else None
    link = record.get("image_link")
    out["image_link"] = link if isinstance(link, str) else None
    match = _LINK_SUBSET.search(out["image_link"] or "")
    out["subset"] = match.group(1) if match else None
    out["reference_frame"] = record.get("reference_frame")
    out["annotator_id"] = record.get("annotator_id")
    return out


def _match(name: str | None, image: CocoImage) -> str | None:
    if not name:
        return None
    categories = image.categories()
    if name in categories:
        return name
    close = difflib.get_close_matches(name, categories, n=1, cutoff=0.75)
    return close[0] if close else None


class VSRSource(Source):
    name = "vsr"
    title = "VSR (Visual Spatial Reasoning) with COCO 2017 boxes"
    splits = ("random/train", "random/dev", "random/test", "zeroshot/train", "zeroshot/dev",
              "zeroshot/test", "train", "dev", "test", "val")
    expected_files = (
        "splits/{random,zeroshot}/{train,dev,test}.jsonl (the VSR repository's data/)",
        "train2017/ and val2017/ (COCO 2017 images), or VSR's images/",
        "annotations/instances_{train,val}2017.json (COCO 2017 annotations; optional, for boxes)",
    )
    homepage = "https://github.com/cambridgeltl/visual-spatial-reasoning"
    license = "Apache-2.0 (VSR); COCO annotations CC BY 4.0, images under Flickr terms"

    def open(self, root: Path, split: str, stats: Counter, options: dict[str, Any]) -> "_Reading":
        """Options: ``jsonl`` (the split file), ``instances_train`` / ``instances_val`` (COCO
        instance files; ``False`` to ignore them)."""
        split = CANONICAL.get(split, split)
        path = find_file(root, [f"splits/{split}.jsonl", f"{split}.jsonl"], explicit=options.get("jsonl"))
        coco = self._instances(root, path, options, stats)
        return _Reading(root, split, stats, [path], coco, self._image_folders(root), ImageFiles(root))

    def records(self, reading: Reading, path: Path) -> Iterator[tuple[int, dict[str, Any] | BadLine]]:
        return iter_jsonl(path)

    def record_files(self, root: Path, split: str, **options: Any) -> list[Path]:
        self.check_split(split)  # the split file only: the COCO instances can be GBs
        split = CANONICAL.get(split, split)
        return [find_file(Path(root), [f"splits/{split}.jsonl", f"{split}.jsonl"], explicit=options.get("jsonl"))]

    def _instances(self, root: Path, path: Path, options: dict[str, Any],
                   stats: Counter) -> dict[str, dict[str, CocoImage] | None]:
        """Per COCO subset, the boxes of the images this split uses (one cheap pre-pass over the
        small jsonl file tells which)."""
        wanted: dict[str, set[str]] = {s: set() for s in SUBSETS}
        for _, record in iter_jsonl(path):
            if isinstance(record, dict) and isinstance(record.get("image"), str):
                match = _LINK_SUBSET.search(str(record.get("image_link") or ""))
                for subset in ([match.group(1)] if match else SUBSETS):
                    wanted[subset].add(record["image"])
        out: dict[str, dict[str, CocoImage] | None] = {}
        for subset in SUBSETS:
            explicit = options.get(f"instances_{subset[:-4]}")
            if explicit is False or not wanted[subset]:
                out[subset] = None
                continue
            file = find_file(root, [f"annotations/instances_{subset}.json", f"instances_{subset}.json"],
                             explicit=explicit or None, required=False)
            if file is None:
                log.warning("vsr: no instances_%s.json under %s: evidence will be empty", subset, root)
                stats["instances_file_missing"] += 1
                out[subset] = None
            else:
                out[subset] = load_instances(file, wanted[subset], stats)
        return out

    @staticmethod
    def _image_folders(root: Path) -> dict[str, list[str]]:
        """Relative folders to look in, per subset: COCO's own, then VSR's flat ``images/``."""
        flat = [relative_to_root(root, d) for d in [find_dir(root, ["images"], required=False)] if d]
        out = {}
        for subset in SUBSETS:
            own = find_dir(root, [subset], required=False)
            out[subset] = ([relative_to_root(root, own)] if own else []) + flat
        return out

    def parse(self, reading: "_Reading", path: Path, index: int, record: dict[str, Any] | BadLine) -> Sample:
        split, stats, coco, folders = reading.split, reading.stats, reading.coco, reading.folders
        if isinstance(record, BadLine):
            raise RecordError(str(record))
        try:
            rec = parse_record(record)
        except ValueError as exc:
            raise RecordError(str(exc)) from None
        subsets = [rec["subset"]] if rec["subset"] else list(SUBSETS)
        entry = next((coco[s].get(rec["image"]) for s in subsets if coco.get(s)
                      and rec["image"] in coco[s]), None)
        candidates = [f"{folder}/{rec['image']}" for s in subsets for folder in folders[s]] or \
                     [f"{subsets[0]}/{rec['image']}"]
        image, width, height, error = None, 0, 0, None
        for candidate in candidates:
            try:
                if entry is None:
                    width, height = reading.image_files.size(candidate)
                else:
                    reading.image_files.check(candidate)
                    width, height = entry.width, entry.height
                image = candidate
                break
            except ImageError as exc:
                error = error if error and error.reason != "missing_image" else exc
        if image is None:
            raise RecordError(str(error), error.reason, image=candidates[0])
        evidence = self._evidence(rec, entry, width, height, stats)
        meta = {k: rec[k] for k in ("relation", "subj", "obj", "reference_frame", "caption", "label",
                                    "image_link", "annotator_id", "subj_obj_from") if k in rec}
        meta.update({k: rec[k] for k in VALIDATOR_FIELDS if k in rec})
        meta["line"] = index
        return Sample(id=f"{self.name}/{split}/{index}", source=self.name, split=split, image=image,
                      width=int(width), height=int(height),
                      question=QUESTION_TEMPLATE.format(caption=rec["caption"]),
                      answers=("true",) if rec["label"] else ("false",), evidence=evidence, meta=meta)

    @staticmethod
    def _evidence(rec: dict[str, Any], entry: CocoImage | None, width: int, height: int,
                  stats: Counter) -> tuple[Region, ...]:
        if entry is None:
            stats["missing_instances"] += 1
            return ()
        regions: list[Region] = []
        used: set[int] = set()
        for role in ("subj", "obj"):
            category = _match(rec[role], entry)
            candidates = sorted((i for i, o in enumerate(entry.objects)
                                 if o.category == category and i not in used),
                                key=lambda i: (-entry.objects[i].area, i))
            if not candidates:
                stats[f"missing_{role}"] += 1
                continue
            used.add(candidates[0])
            region = object_region(*entry.objects[candidates[0]].bbox, label=category,
                                   width=width, height=height, stats=stats)
            if region is not None:
                regions.append(region)
        return tuple(regions)

    def write_sample_tree(self, out: Path, per_split: int, seed: int) -> None:
        from vlir.sources.samples.vsr import write_vsr_tree

        write_vsr_tree(Path(out), per_split, seed)


@dataclass
class _Reading(Reading):
    coco: dict[str, dict[str, CocoImage] | None]  # per COCO subset, the boxes of the images used
    folders: dict[str, list[str]]
    image_files: ImageFiles

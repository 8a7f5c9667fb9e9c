"""The offline annotator: a reasoning chain per sample, built from its evidence, without a model.

Per source:

- GQA: walk the ``semantic`` program (:mod:`vlir.annotate.gqa_walk`): a look at each step's object
  that has a region, a thought saying what the step found.
- TextVQA, DocVQA, InfographicsVQA: find where a gold answer is written among the OCR words/lines
  (:mod:`vlir.annotate.text_match`), look there (with the nearby question word as context), read
  it. The most agreed-upon answer that can be found wins; the chain's answer is its human spelling.
- VSR: look at the subject, then the object; describe how their regions sit, then give the verdict.
  For relations the 2-D layout decides (left/right/above/below), a label that the layout
  contradicts (an intrinsic reference frame, say) is rejected as ``evidence_conflict`` rather
  than explained with a false sentence.
- M3CoT: looks at its regions, if it has any, then the option letter.
- Object sources (the zoom task): the same looks, then the answer (short: few tokens to roll out).

No usable evidence -> :class:`AnnotationError` ``no_evidence``; the build stores the sample as a
reject. Sentences come from :mod:`vlir.annotate.templates`, picked by a random generator seeded
with the sample id, so a sample gets the same chain in any order, shard or process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, ClassVar

import math

import vlir
from vlir import geometry, metrics, source_table
from vlir.annotate.base import AnnotateInput, AnnotationError, Annotator
from vlir.annotate.gqa_walk import walk_program
from vlir.annotate.templates import TEMPLATES, Phrases, where
from vlir.annotate.text_match import LINE_KINDS, WORD_KINDS, find_text, look_box
from vlir.checks import CheckConfig
from vlir.config import Config, option
from vlir.geometry import MODEL_PIXELS, PixelBudget
from vlir.records import Box, Chain, Look, Provenance, Region, Sample, Step, Think

log = logging.getLogger(__name__)

TEXT_SOURCES = source_table.sources_with("grounding", "text")
OBJECT_SOURCES = source_table.sources_with("grounding", "object")
DROPPED = "dropped"  # kind of a region outside the image (kept so GQA's index stays valid)
UNANSWERABLE = frozenset({"unanswerable", "unanswerable question", "no answer"})


@dataclass(frozen=True)
class GroundedConfig(Config):
    """Settings of the grounded annotator (the ``grounded`` section of a build config). The look
    geometry limits (min side, max area, max looks, redundancy) are not here: they are the checks'
    thresholds, read from :class:`vlir.checks.CheckConfig`, so the two can never disagree. Nor is
    the model's view looks are snapped to: that is the build's (``BuildConfig.model_budget``, on its
    model family's grid), given to :class:`GroundedAnnotator` as ``model_budget``."""

    kind: ClassVar[str] = "grounded annotator"
    section: ClassVar[str] = "grounded"

    text_match_min: float = option(0.8, "Least normalised Levenshtein similarity for OCR text to count "
                                        "as the answer.", ge=0, le=1)
    object_pad: float = option(0.1, "Pad object regions by this share of their size on each side "
                                    "(context).", ge=0)


def sample_rng(sample_id: str) -> random.Random:
    """A generator seeded by the sample id only (not Python's salted ``hash``)."""
    return random.Random(int.from_bytes(hashlib.sha256(sample_id.encode("utf-8")).digest()[:8], "big"))


def templates_hash() -> str:
    """Changes whenever a template changes, so provenance tells chain versions apart."""
    blob = json.dumps(TEMPLATES, sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def snap_outwards(box: Box, width: int, height: int, budget: PixelBudget = MODEL_PIXELS) -> Box:
    """The smallest box on the model's box grid (``bbox_2d`` integers) that contains ``box``.

    The build snaps every look to that grid by rounding (:func:`vlir.geometry.snap_to_model`);
    a box already on it is left as it is, so a 28-pixel side cannot lose a fraction of a pixel
    there and fail ``box_min_side``."""
    try:
        mw, mh = geometry.box_space(width, height, budget)
    except ValueError:
        return box
    sx, sy = mw / width, mh / height
    x1 = max(0, math.floor(box.x1 * sx + 1e-6))
    y1 = max(0, math.floor(box.y1 * sy + 1e-6))
    x2 = min(mw, math.ceil(box.x2 * sx - 1e-6))
    y2 = min(mh, math.ceil(box.y2 * sy - 1e-6))
    if x1 >= x2 or y1 >= y2:
        return box
    return geometry.clip(geometry.from_model([x1, y1, x2, y2], width, height, budget), width, height) or box


def merge_thoughts(steps: list[Step]) -> tuple[Step, ...]:
    """Join consecutive thoughts into one, so the chain alternates think / look."""
    out: list[Step] = []
    for step in steps:
        if isinstance(step, Think) and out and isinstance(out[-1], Think):
            out[-1] = Think(f"{out[-1].text} {step.text}".strip())
        else:
            out.append(step)
    return tuple(out)


class GroundedAnnotator(Annotator):
    """Deterministic, model-free chains from a sample's evidence regions (see module docstring)."""

    name = "grounded"

    def __init__(self, config: GroundedConfig | None = None, checks: CheckConfig | None = None,
                 model_budget: PixelBudget = MODEL_PIXELS, **overrides: Any):
        base = config or GroundedConfig()
        self.config = GroundedConfig.from_dict({**{f.name: getattr(base, f.name) for f in fields(base)},
                                                **overrides})
        self.checks = checks or CheckConfig()  # the look limits: the checks' own thresholds
        self.model_budget = model_budget  # the build's model view (its family's grid): looks snap to it

    def provenance(self) -> Provenance:
        return Provenance(annotator=self.name, vlir_version=vlir.__version__, prompt_hash=templates_hash())

    def annotate(self, item: AnnotateInput) -> Chain:
        sample = item.sample
        width, height = sample.width, sample.height
        if width <= 0 or height <= 0:
            width, height = item.image.size
        if not sample.answers:
            raise AnnotationError("no_answer", f"{sample.id} has no reference answer")
        sample = _clip_evidence(sample, width, height)
        phrases = Phrases(sample_rng(sample.id))
        kinds = {r.kind for r in sample.evidence} - {DROPPED}
        if sample.source == "gqa":
            steps, answer = self._gqa(sample, phrases, width, height)
        elif sample.source in TEXT_SOURCES or kinds & set(WORD_KINDS + LINE_KINDS):
            steps, answer = self._text(sample, phrases, width, height)
        elif sample.source == "vsr":
            steps, answer = self._vsr(sample, phrases, width, height)
        elif sample.source == "m3cot" or sample.source in OBJECT_SOURCES or kinds:
            steps, answer = self._regions(sample, phrases, width, height)
        else:
            raise AnnotationError("no_evidence", f"{sample.id}: no regions to look at")
        chain = Chain(merge_thoughts(steps), answer)
        if not chain.looks:
            raise AnnotationError("no_evidence", f"{sample.id}: nothing that can be looked at")
        return chain

    # -- looks -----------------------------------------------------------------------------------
    def _looker(self, width: int, height: int) -> Callable[[Box], Box | None]:
        """A ``make_look`` for one chain: pads an object region, enforces the min side, refuses
        regions that fill the image, repeats of an earlier look, and looks past ``max_looks``."""
        cfg, lim = self.config, self.checks
        taken: list[Box] = []

        def make_look(region: Box) -> Box | None:
            if len(taken) >= lim.max_looks:
                return None
            core = geometry.clip(region, width, height)
            if core is None:
                return None
            pad_x = max(2.0, cfg.object_pad * core.width)
            pad_y = max(2.0, cfg.object_pad * core.height)
            box = geometry.ensure_min_side(geometry.expand(core, pad_x, pad_y, width, height),
                                           lim.min_side, width, height)
            if geometry.area_ratio(box, width, height) > lim.max_area_ratio:
                box = geometry.ensure_min_side(core, lim.min_side, width, height)
                if geometry.area_ratio(box, width, height) > lim.max_area_ratio:
                    return None
            box = snap_outwards(box, width, height, self.model_budget)
            if any(geometry.iou(box, t) >= lim.redundant_iou for t in taken):
                return None
            taken.append(box)
            return box

        return make_look

    # -- GQA -------------------------------------------------------------------------------------
    def _gqa(self, sample: Sample, phrases: Phrases, width: int, height: int) -> tuple[list[Step], str]:
        if not sample.meta.get("semantic"):
            raise AnnotationError("no_evidence", f"{sample.id}: no semantic program")
        if not sample.evidence:
            raise AnnotationError("no_evidence", f"{sample.id}: no object regions (scene graph missing?)")
        answer = sample.answers[0].strip()
        steps = walk_program(sample, answer, phrases, self._looker(width, height))
        steps.append(Think(phrases.say("conclude", answer=answer)))
        return steps, answer

    # -- text ------------------------------------------------------------------------------------
    @staticmethod
    def answer_candidates(sample: Sample) -> list[str]:
        """Distinct gold answers to try, most agreed-upon first (ties: first given), each in the
        spelling of the first annotator who gave it; "unanswerable" is never a candidate."""
        first: dict[str, tuple[int, str]] = {}
        counts: dict[str, int] = {}
        for i, a in enumerate(sample.answers):
            norm = metrics.normalize_answer(a)
            if not norm or norm in UNANSWERABLE:
                continue
            counts[norm] = counts.get(norm, 0) + 1
            first.setdefault(norm, (i, a.strip()))
        order = sorted(counts, key=lambda n: (-counts[n], first[n][0]))
        return [first[n][1] for n in order]

    def _text(self, sample: Sample, phrases: Phrases, width: int, height: int) -> tuple[list[Step], str]:
        cfg, lim = self.config, self.checks
        if not any(r.kind in WORD_KINDS + LINE_KINDS for r in sample.evidence):
            raise AnnotationError("no_evidence", f"{sample.id}: no text regions")
        match, answer = None, ""
        for candidate in self.answer_candidates(sample):
            if not metrics.is_correct(sample.source, candidate, sample.answers, lim.vqa_min, lim.anls_min):
                continue
            match = find_text(candidate, sample.evidence, sample.question, cfg.text_match_min)
            if match is not None:
                answer = candidate
                break
        if match is None:
            raise AnnotationError("no_evidence", f"{sample.id}: no answer found among the image's text")
        box = snap_outwards(look_box(match, width, height, lim.min_side, lim.max_area_ratio),
                            width, height, self.model_budget)
        if geometry.area_ratio(box, width, height) > lim.max_area_ratio:
            raise AnnotationError("no_evidence", f"{sample.id}: the answer's text fills the image")
        seen = answer
        answer = self._extend(sample, answer)
        read = phrases.say("text_read", text=seen)
        if match.context:
            read += " " + phrases.say("text_context", context=match.context)
        steps: list[Step] = [
            Think(phrases.say("text_plan", where=where(box.center, width, height))),
            Look(box, "text"),
            Think(read),
            Think(phrases.say("conclude", answer=answer)),
        ]
        return steps, answer

    def _extend(self, sample: Sample, seen: str) -> str:
        """A more agreed-upon gold answer that contains the text read as whole words ("10" read on
        a whisky label, "10 years" answered by most people), else the text read."""
        seen_words = metrics.normalize_answer(seen).split()
        best = seen
        for candidate in self.answer_candidates(sample):
            if candidate == seen:
                break
            words = metrics.normalize_answer(candidate).split()
            n = len(seen_words)
            if any(words[i:i + n] == seen_words for i in range(len(words) - n + 1)):
                best = candidate
                break
        return best

    # -- VSR -------------------------------------------------------------------------------------
    def _vsr(self, sample: Sample, phrases: Phrases, width: int, height: int) -> tuple[list[Step], str]:
        meta = sample.meta or {}
        relation = str(meta.get("relation") or "").strip()
        subj_name = str(meta.get("subj") or "").strip()
        obj_name = str(meta.get("obj") or "").strip()
        objects = [r for r in sample.evidence if r.kind not in WORD_KINDS + LINE_KINDS + (DROPPED,)]
        subj, obj = _pick_pair(objects, subj_name, obj_name)
        if subj is None or obj is None or not relation:
            raise AnnotationError("no_evidence", f"{sample.id}: needs subject and object regions and a relation")
        subj_name, obj_name = subj_name or subj.label or "first object", obj_name or obj.label or "second object"
        answer = metrics.majority_answer(sample.answers)
        truth = metrics.truth_value(answer)
        if truth is None:
            raise AnnotationError("no_answer", f"{sample.id}: answer {answer!r} is not true/false")
        verdict = _layout_verdict(relation, subj.box, obj.box, width, height)
        if verdict is not None and verdict != truth:
            raise AnnotationError("evidence_conflict",
                                  f"{sample.id}: the regions' layout contradicts '{relation}' = {truth}")
        make_look = self._looker(width, height)
        steps: list[Step] = [Think(phrases.say("vsr_plan", subj=subj_name, obj=obj_name))]
        box = make_look(subj.box)
        if box is not None:
            steps.append(Look(box, subj_name))
        steps.append(Think(phrases.say("vsr_subj", subj=subj_name, obj=obj_name,
                                       where=where(subj.box.center, width, height))))
        box = make_look(obj.box)
        if box is not None:
            steps.append(Look(box, obj_name))
        steps.append(Think(phrases.say("vsr_obj", obj=obj_name, where=where(obj.box.center, width, height))))
        layout = describe_layout(subj_name, obj_name, subj.box, obj.box, width, height)
        steps.append(Think(phrases.say("vsr_layout", layout=layout)))
        key = "vsr_verdict_true" if truth else "vsr_verdict_false"
        steps.append(Think(phrases.say(key, subj=subj_name, obj=obj_name, relation=relation)))
        return steps, answer

    # -- regions (M3CoT and anything else with object regions) ------------------------------------
    def _regions(self, sample: Sample, phrases: Phrases, width: int, height: int) -> tuple[list[Step], str]:
        if not sample.evidence:
            raise AnnotationError("no_evidence", f"{sample.id}: no regions to look at")
        make_look, short = self._looker(width, height), sample.source in OBJECT_SOURCES
        steps: list[Step] = []
        for region in sample.evidence:
            if region.kind == DROPPED:
                continue
            name = region.label or "marked part"
            box = make_look(region.box)
            if box is None:
                continue
            steps += [Think(phrases.say("object_look" if short else "mc_look", name=name)), Look(box, name)]
            if not short:
                steps.append(Think(phrases.say("mc_seen", name=name, where=where(region.box.center, width, height))))
        answer = sample.answers[0].strip()
        letter = metrics.mc_letter(answer) or answer
        steps.append(Think(phrases.say("object_answer", answer=answer) if short
                           else phrases.say("mc_conclude", answer=letter)))
        return steps, answer


def _clip_evidence(sample: Sample, width: int, height: int) -> Sample:
    """The sample with its regions clipped to the image and those outside it dropped (the build
    cleans evidence too; this keeps the annotator safe on its own). The object index of GQA is
    keyed by position, so a dropped region leaves its slot as an unusable empty label instead."""
    kept: list[Region] = []
    changed = False
    for region in sample.evidence:
        b = region.box
        if b.x1 >= 0 and b.y1 >= 0 and b.x2 <= width and b.y2 <= height:  # the common case, no new Box
            kept.append(region)
            continue
        box = geometry.clip(b, width, height)
        if box is None:
            box, changed = Box(0.0, 0.0, 1e-3, 1e-3), True  # degenerate stand-in, never looked at
            region = Region(box, "", DROPPED)
        elif box != region.box:
            region, changed = Region(box, region.label, region.kind), True
        kept.append(region)
    return replace(sample, evidence=tuple(kept)) if changed else sample


def _pick_pair(regions: list[Region], subj: str, obj: str) -> tuple[Region | None, Region | None]:
    """The subject and object regions: by name where the names are known, else in order."""
    def named(name: str, exclude: Region | None) -> Region | None:
        for r in regions:
            if r is not exclude and name and r.label.strip().casefold() == name.casefold():
                return r
        return None

    s = named(subj, None) or (regions[0] if regions else None)
    o = named(obj, s) or next((r for r in regions if r is not s), None)
    return s, o


_LEFT = ("left of", "to the left of", "at the left side of")
_RIGHT = ("right of", "to the right of", "at the right side of")
_ABOVE = ("above",)
_BELOW = ("below",)


def _layout_verdict(relation: str, s: Box, o: Box, width: int, height: int) -> bool | None:
    """True/False where the 2-D layout clearly decides the relation (centres apart by more than a
    tenth of the image and the boxes do not overlap on that axis), else None."""
    rel = relation.strip().lower()
    (sx, sy), (ox, oy) = s.center, o.center
    apart_x = abs(sx - ox) > 0.1 * width and (s.x2 <= o.x1 or o.x2 <= s.x1)
    apart_y = abs(sy - oy) > 0.1 * height and (s.y2 <= o.y1 or o.y2 <= s.y1)
    if rel in _LEFT and apart_x:
        return sx < ox
    if rel in _RIGHT and apart_x:
        return sx > ox
    if rel in _ABOVE and apart_y:
        return sy < oy
    if rel in _BELOW and apart_y:
        return sy > oy
    return None


def describe_layout(subj: str, obj: str, s: Box, o: Box, width: int, height: int) -> str:
    """Plain, true statements about two regions' 2-D arrangement."""
    parts = []
    (sx, sy), (ox, oy) = s.center, o.center
    if abs(sx - ox) > 0.1 * width:
        parts.append(f"the {subj} is further {'left' if sx < ox else 'right'} than the {obj}")
    if abs(sy - oy) > 0.1 * height:
        parts.append(f"the {subj} sits {'higher' if sy < oy else 'lower'} in the picture")
    if geometry.containment(s, o) > 0.9:
        parts.append(f"the {subj} lies within the area of the {obj}")
    elif geometry.containment(o, s) > 0.9:
        parts.append(f"the {obj} lies within the area of the {subj}")
    elif geometry.intersection(s, o) > 0:
        parts.append("the two overlap")
    else:
        parts.append("they do not overlap")
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]

"""Walk a GQA ``semantic`` program into think/look steps (for the grounded annotator).

A GQA question comes with the program that produced it: ``select`` an object, ``relate`` it to
another, ``filter``/``query``/``verify``/``choose`` attributes, ``exist``, ``and``/``or``,
``same``/``different``/``common``. Object arguments end in ``"name (objectId)"``; the GQA adapter
stores ``meta["object_index"]`` (objectId -> index into ``sample.evidence``).

Each step whose object has a region gives a look (with a thought before and after it); every
step gives a thought saying what it found. The program was generated from the image's scene
graph, so a step's result is true of the image, with one exception: when the answer is "no", the
relation or filter that the final step tests may fail, so on that path relate/filter steps only
say what is being checked and which object is there, and the final step states the negation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from vlir.annotate.templates import Phrases, article, where
from vlir.metrics import normalize_answer
from vlir.records import Box, Look, Sample, Step, Think

_IDS_SUFFIX = re.compile(r"(?:^|\s)\(([^()]*)\)\s*$")
_INDEX_KEYS = ("object_index", "evidence_index", "object_to_evidence", "objects")


@dataclass(frozen=True)
class Obj:
    """What a program step refers to: the noun, a description, and its region (if any)."""

    name: str
    desc: str  # noun phrase without article: "cart near the pond"
    box: Box | None
    ids: tuple[str, ...] = ()


def split_argument(argument: str) -> tuple[str, tuple[str, ...]]:
    """``"cart,near,s (1039872)"`` -> ``("cart,near,s", ("1039872",))``; ``"not(red)"`` keeps its
    parentheses; ``"cup (-)"`` names no object."""
    argument = (argument or "").strip()
    match = _IDS_SUFFIX.search(argument)
    if not match:
        return argument, ()
    ids = tuple(p.strip() for p in match.group(1).split(",") if p.strip() not in ("", "-"))
    return argument[: match.start()].strip(), ids


def object_index(sample: Sample) -> dict[str, int]:
    """objectId -> evidence index, from whichever meta key the adapter used (a dict, or a list of
    ids aligned with the evidence)."""
    meta = sample.meta or {}
    for key in _INDEX_KEYS + ("object_ids", "evidence_ids"):
        value = meta.get(key)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if isinstance(v, int) and 0 <= v < len(sample.evidence):
                    out[str(k)] = v
            return out
        if isinstance(value, list) and len(value) == len(sample.evidence):
            return {str(k): i for i, k in enumerate(value)}
    return {}


class ProgramWalker:
    """Turns one sample's program into steps. ``make_look`` maps an object region to the box to
    look at (padding, min side) or None when it cannot be zoomed (e.g. it fills the image)."""

    def __init__(self, sample: Sample, answer: str, phrases: Phrases,
                 make_look: Callable[[Box], Box | None]):
        self.sample = sample
        self.answer = answer
        self.say = phrases.say
        self.make_look = make_look
        self.index = object_index(sample)
        self.negative = normalize_answer(answer) == "no"
        ops = {str(op.get("operation") or "").strip() for op in sample.meta.get("semantic") or ()
               if isinstance(op, dict)}
        # "or" answered yes / "and" answered no: which branch held is unknown, so the branch
        # steps only say what is checked.
        self.uncertain = ("or" in ops and not self.negative) or ("and" in ops and self.negative)
        self.tentative = self.negative or self.uncertain
        self.steps: list[Step] = []
        self.n_looks = 0

    # -- helpers --------------------------------------------------------------------------------
    def _region(self, ids: tuple[str, ...]) -> tuple[Box | None, str]:
        boxes, labels = [], []
        for object_id in ids:
            i = self.index.get(object_id)
            if i is not None and self.sample.evidence[i].kind != "dropped":
                boxes.append(self.sample.evidence[i].box)
                labels.append(self.sample.evidence[i].label)
        if not boxes:
            return None, ""
        union = Box(min(b.x1 for b in boxes), min(b.y1 for b in boxes),
                    max(b.x2 for b in boxes), max(b.y2 for b in boxes))
        return union, labels[0]

    def _where(self, box: Box) -> str:
        return where(box.center, self.sample.width, self.sample.height)

    def _look(self, box: Box | None, label: str, intent: str) -> bool:
        """Think ``intent`` then look at ``box``; False (and nothing added) when it cannot be
        looked at."""
        target = self.make_look(box) if box is not None else None
        if target is None:
            return False
        self.steps.append(Think(intent))
        self.steps.append(Look(target, label))
        self.n_looks += 1
        return True

    def _think(self, text: str) -> None:
        self.steps.append(Think(text))

    # -- operations ------------------------------------------------------------------------------
    def walk(self) -> list[Step]:
        program = self.sample.meta.get("semantic") or []
        results: list[Obj | None] = []
        for i, op in enumerate(program):
            if not isinstance(op, dict):
                results.append(None)
                continue
            deps = [d for d in op.get("dependencies") or () if isinstance(d, int) and 0 <= d < i]
            prevs = [results[d] for d in deps if results[d] is not None]
            operation = str(op.get("operation") or "").strip()
            head, _, attr = operation.partition(" ")
            handler = getattr(self, f"_op_{head}", None)
            result = handler(attr.strip(), str(op.get("argument") or ""), prevs) if handler else None
            results.append(result if result is not None else (prevs[0] if prevs else None))
        return self.steps

    def _op_select(self, attr: str, argument: str, prevs: list[Obj]) -> Obj:
        name, ids = split_argument(argument)
        box, label = self._region(ids)
        name = name or label or "object"
        key = "plan_object" if self.n_looks == 0 else "next_object"
        if self._look(box, name, self.say(key, name=name)):
            self._think(self.say("seen_object", name=name, where=self._where(box)))
        return Obj(name, name, box, ids)

    def _relation_parts(self, argument: str) -> tuple[str, str, str, tuple[str, ...]]:
        text, ids = split_argument(argument)
        parts = [p.strip() for p in text.split(",")]
        if len(parts) >= 3:
            name, rel, direction = parts[0], ",".join(parts[1:-1]), parts[-1]
        else:
            name, rel, direction = parts[0], "related to", "s"
        return name, rel, direction, ids

    def _op_relate(self, attr: str, argument: str, prevs: list[Obj]) -> Obj:
        name, rel, direction, ids = self._relation_parts(argument)
        box, label = self._region(ids)
        if name in ("", "_"):
            name = label or "object"
        prev = prevs[0].name if prevs else "object"
        prev_np = f"the {prev}"
        if direction == "o":
            desc = f"{name} that the {prev} is {rel}"
        else:
            desc = f"{name} {rel} the {prev}"
        seek = self.say("seek_related", name=name, rel=rel, prev=prev_np) if direction != "o" else \
            self.say("next_object", name=name)
        if self._look(box, name, seek):
            if self.tentative:
                self._think(self.say("seen_candidate", name=name, where=self._where(box)))
            elif direction == "o":
                self._think(self.say("found_related_o", name=name, rel=rel, prev=prev_np,
                                     where=self._where(box)))
            else:
                self._think(self.say("found_related_s", name=name, rel=rel, prev=prev_np,
                                     where=self._where(box)))
        elif not self.tentative and direction != "o":
            self._think(self.say("found_related_nobox", name=name, rel=rel, prev=prev_np))
        return Obj(name, desc, box, ids)

    def _op_filter(self, attr: str, argument: str, prevs: list[Obj]) -> Obj | None:
        if not prevs:
            return None
        prev = prevs[0]
        value = argument.strip()
        negated = value.startswith("not(") and value.endswith(")")
        inner = value[4:-1] if negated else value
        if attr in ("hposition", "vposition"):
            desc = f"{prev.desc} on the {inner}" if not negated else f"{prev.desc} not on the {inner}"
            phrase = f"on the {inner}" if not negated else f"not on the {inner}"
        elif negated:
            desc, phrase = f"{prev.desc} that is not {inner}", f"not {inner}"
        else:
            desc, phrase = f"{inner} {prev.desc}", inner
        if self.tentative:
            self._think(self.say("seek_filter", value=phrase))
        else:
            self._think(self.say("filter", desc=f"the {desc}"))
        return Obj(prev.name, desc, prev.box, prev.ids)

    def _op_query(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        attr = attr or argument.strip()
        if attr == "name":
            self._think(self.say("query_name", a_answer=article(self.answer)))
        elif attr == "color":
            self._think(self.say("query_color", answer=self.answer))
        elif attr in ("hposition", "vposition"):
            self._think(self.say("query_position", answer=self.answer))
        elif attr == "material":
            self._think(self.say("query_material", answer=self.answer))
        else:
            self._think(self.say("query_attr", attr=attr or "kind", answer=self.answer))

    def _look_related(self, argument: str, prevs: list[Obj]) -> tuple[Obj, str, str, str]:
        """A relation that verify and choose ask about: look at its other object (named by the
        program, else by its region) and return it with the relation, subject and object phrased
        in the relation's direction (``s``: the other object is the subject)."""
        name, rel, direction, ids = self._relation_parts(argument)
        box, label = self._region(ids)
        name = label if name in ("", "_") else name
        prev = f"the {prevs[0].name}" if prevs else "it"
        subj, obj = (f"the {name}", prev) if direction == "s" else (prev, f"the {name}")
        self._look(box, name, self.say("next_object", name=name))
        return Obj(name, name, box, ids), rel, subj, obj

    def _op_verify(self, attr: str, argument: str, prevs: list[Obj]) -> Obj | None:
        if attr == "rel":
            other, rel, subj, obj = self._look_related(argument, prevs)
            if self.uncertain:
                self._think(self.say("seek_filter", value=f"{rel} {obj}"))
            else:
                key = "verify_rel_no" if self.negative else "verify_rel_yes"
                self._think(self.say(key, subj=subj, obj=obj, rel=rel))
            return other
        value = argument.strip()
        if attr in ("hposition", "vposition"):
            value = f"on the {value}"
        if self.uncertain:
            self._think(self.say("seek_filter", value=value))
        else:
            self._think(self.say("verify_no" if self.negative else "verify_yes", value=value))
        return None

    def _op_exist(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        desc = prevs[0].desc if prevs else "such a thing"
        if self.uncertain:
            self._think(self.say("exist_check", a_desc=article(desc)))
        elif self.negative:
            self._think(self.say("exist_no", desc=desc))
        else:
            self._think(self.say("exist_yes", a_desc=article(desc)))

    def _op_choose(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        answer_n = normalize_answer(self.answer)
        if attr == "rel":
            _, _, subj, obj = self._look_related(argument, prevs)
            self._think(self.say("choose_rel", subj=subj, obj=obj, answer=self.answer))
            return
        options = [o.strip() for o in split_argument(argument)[0].split("|") if o.strip()]
        others = [o for o in options if normalize_answer(o) != answer_n]
        if attr in ("hposition", "vposition") and len(others) < len(options):
            self._think(self.say("query_position", answer=self.answer))
        elif len(options) == 2 and len(others) == 1:
            self._think(self.say("choose", answer=self.answer, other=others[0]))
        else:
            self._think(self.say("compare", answer=self.answer))

    def _same_different(self, same: bool, attr: str, argument: str) -> None:
        attr = attr or split_argument(argument)[0] or "type"
        yes = not self.negative
        key = "same_yes" if (yes == same) else "same_no"
        self._think(self.say(key, attr=attr, attr_plural=attr + "s"))

    def _op_same(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        self._same_different(True, attr, argument)

    def _op_different(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        self._same_different(False, attr, argument)

    def _op_common(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        self._think(self.say("common", answer=self.answer))

    def _op_compare(self, attr: str, argument: str, prevs: list[Obj]) -> None:
        self._think(self.say("compare", answer=self.answer))


def walk_program(sample: Sample, answer: str, phrases: Phrases,
                 make_look: Callable[[Box], Box | None]) -> list[Step]:
    """Steps for a GQA sample (possibly without any look: the caller decides what that means)."""
    return ProgramWalker(sample, answer, phrases, make_look).walk()

"""The GQA miniature for ``vlir sample``: official file names, keys and conventions, truthful answers.

Writes ``questions/{split}_balanced_questions.json`` (dict keyed by 8-digit question id, with the
official fields in the official order), ``sceneGraphs/{split}_sceneGraphs.json`` and
``images/<imageId>.jpg`` for ``train`` and ``val``. Programs use GQA's operations (select, relate,
filter, query, verify, exist, choose, same) with object arguments written ``"name (objectId)"``,
``"_"`` for the queried name and ``",s"`` subject relations, as the real files do. Every answer is
read off the drawing, and every annotation points at a drawn object whose scene-graph box is the
drawn shape.
"""

from __future__ import annotations

import json
import math
import os
import random
from pathlib import Path
from typing import Any, Callable

from vlir.sources.samples.scenes import SHAPE_COLORS, DrawnObject, above, draw_scene, left_of
from vlir.sources.samples.synth import save_image

NAMES = ("ball", "box", "cup", "car", "lamp", "book", "chair", "clock", "hat", "teddy bear",
         "trash can", "traffic light")
SIZES = ((400, 300), (448, 336), (480, 320))

Objs = list[DrawnObject]
Template = Callable[[random.Random, Objs, list[str], int, int], "dict[str, Any] | None"]


def span(text: str, phrase: str) -> str:
    """GQA's annotation key for ``phrase`` in ``text``: the whitespace-token index ``"i"`` or the
    half-open span ``"i:j"`` (as in the real files: "traffic signal" at tokens 6-7 is ``"6:8"``)."""
    tokens = [t.strip("?.,!").lower() for t in text.split()]
    words = phrase.lower().split()
    for i in range(len(tokens) - len(words) + 1):
        if tokens[i:i + len(words)] == words:
            return str(i) if len(words) == 1 else f"{i}:{i + len(words)}"
    raise ValueError(f"{phrase!r} not in {text!r}")


def _q(question: str, answer: str, full: str, ops: list[tuple[str, list[int], str]],
       refs: dict[str, list[tuple[str, str]]], types: tuple[str, str, str], local: str) -> dict:
    """Assemble a template's parts; ``refs`` maps question/answer/fullAnswer to (phrase, id)."""
    texts = {"answer": answer, "question": question, "fullAnswer": full}
    annotations = {part: {span(text, phrase): oid for phrase, oid in refs.get(part, [])}
                   for part, text in texts.items()}
    return {"question": question, "answer": answer, "fullAnswer": full, "ops": ops,
            "annotations": annotations, "types": types, "local": local}


def _other_color(rng: random.Random, color: str) -> str:
    return rng.choice([c for c in SHAPE_COLORS if c != color])


def t_query_color(rng, objs, ids, w, h):
    i = rng.randrange(len(objs))
    o = objs[i]
    q, full = f"What color is the {o.name}?", f"The {o.name} is {o.color}."
    return _q(q, o.color, full, [("select", [], f"{o.name} ({ids[i]})"), ("query", [0], "color")],
              {"question": [(o.name, ids[i])], "fullAnswer": [(o.name, ids[i])]},
              ("directOf", "attr", "query"), f"10q-{o.name}_color")


def _color_guess(rng, objs, ids):
    """A random object, a colour that is its own half the time, and the one-object reference."""
    i = rng.randrange(len(objs))
    o = objs[i]
    c = o.color if rng.random() < 0.5 else _other_color(rng, o.color)
    return i, o, c, c == o.color, {"question": [(o.name, ids[i])], "fullAnswer": [(o.name, ids[i])]}


def t_verify_color(rng, objs, ids, w, h):
    i, o, c, yes, refs = _color_guess(rng, objs, ids)
    q = f"Is the {o.name} {c}?"
    full = f"Yes, the {o.name} is {c}." if yes else f"No, the {o.name} is {o.color}."
    return _q(q, "yes" if yes else "no", full,
              [("select", [], f"{o.name} ({ids[i]})"), ("verify color", [0], c)],
              refs, ("verifyAttr", "attr", "verify"), f"06-{o.name}_{c}")


def t_choose_color(rng, objs, ids, w, h):
    i = rng.randrange(len(objs))
    o = objs[i]
    pair = [o.color, _other_color(rng, o.color)]
    rng.shuffle(pair)
    q, full = f"Is the {o.name} {pair[0]} or {pair[1]}?", f"The {o.name} is {o.color}."
    return _q(q, o.color, full,
              [("select", [], f"{o.name} ({ids[i]})"), ("choose color", [0], "|".join(pair))],
              {"question": [(o.name, ids[i])], "fullAnswer": [(o.name, ids[i])]},
              ("chooseAttr", "attr", "choose"), f"10c-{o.name}_color")


def t_relate_query(rng, objs, ids, w, h):
    order = list(range(len(objs)))
    rng.shuffle(order)
    for p in order:
        for rel, test in (("to the left of", lambda a, b: left_of(a, b)),
                          ("to the right of", lambda a, b: left_of(b, a))):
            hits = [j for j in range(len(objs)) if j != p and test(objs[j], objs[p])]
            if len(hits) == 1:
                o, pn = objs[hits[0]], objs[p].name
                q, full = f"What is {rel} the {pn}?", f"The {o.name} is {rel} the {pn}."
                return _q(q, o.name, full,
                          [("select", [], f"{pn} ({ids[p]})"),
                           ("relate", [0], f"_,{rel},s ({ids[hits[0]]})"), ("query", [1], "name")],
                          {"question": [(pn, ids[p])], "answer": [(o.name, ids[hits[0]])],
                           "fullAnswer": [(o.name, ids[hits[0]]), (pn, ids[p])]},
                          ("relS", "rel", "query"), f"14-{pn}_{rel},s")
    return None


def t_relate_exist(rng, objs, ids, w, h):
    pairs = [(a, b) for a in range(len(objs)) for b in range(len(objs))
             if a != b and (left_of(objs[a], objs[b]) or left_of(objs[b], objs[a]))]
    if not pairs:
        return None
    qi, p = rng.choice(pairs)
    rel = rng.choice(("to the left of", "to the right of"))
    actual = "to the left of" if left_of(objs[qi], objs[p]) else "to the right of"
    qn, pn = objs[qi].name, objs[p].name
    q = f"Is there a {qn} {rel} the {pn}?"
    full = (f"Yes, there is a {qn} {rel} the {pn}." if rel == actual
            else f"No, the {qn} is {actual} the {pn}.")
    refs = [(qn, ids[qi]), (pn, ids[p])]
    return _q(q, "yes" if rel == actual else "no", full,
              [("select", [], f"{pn} ({ids[p]})"), ("relate", [0], f"{qn},{rel},s ({ids[qi]})"),
               ("exist", [1], "?")],
              {"question": refs, "fullAnswer": refs}, ("existRelS", "rel", "verify"), f"13-{pn}_{qn}")


def t_filter_exist(rng, objs, ids, w, h):
    i, o, c, yes, refs = _color_guess(rng, objs, ids)
    q = f"Is there a {c} {o.name} in the image?"
    full = f"Yes, there is a {c} {o.name}." if yes else f"No, there is a {o.name} but it is {o.color}."
    return _q(q, "yes" if yes else "no", full,
              [("select", [], f"{o.name} ({ids[i]})"), ("filter color", [0], c), ("exist", [1], "?")],
              refs, ("existAttrC", "obj", "verify"), f"04-{o.name}_{c}")


def t_compare_color(rng, objs, ids, w, h):
    if len(objs) < 2:
        return None
    a, b = rng.sample(range(len(objs)), 2)
    oa, ob = objs[a], objs[b]
    same = oa.color == ob.color
    q = f"Are the {oa.name} and the {ob.name} the same color?"
    full = (f"Yes, both the {oa.name} and the {ob.name} are {oa.color}." if same
            else f"No, the {oa.name} is {oa.color} and the {ob.name} is {ob.color}.")
    refs = [(oa.name, ids[a]), (ob.name, ids[b])]
    return _q(q, "yes" if same else "no", full,
              [("select", [], f"{oa.name} ({ids[a]})"), ("select", [], f"{ob.name} ({ids[b]})"),
               ("same color", [0, 1], "")],
              {"question": refs, "fullAnswer": refs}, ("twoSame", "attr", "compare"),
              f"09same-{oa.name}_{ob.name}")


def t_verify_hposition(rng, objs, ids, w, h):
    clear = [i for i, o in enumerate(objs) if abs(o.cx - w / 2) > w * 0.1]
    if not clear:
        return None
    i = rng.choice(clear)
    o = objs[i]
    actual = "left" if o.cx < w / 2 else "right"
    side = rng.choice(("left", "right"))
    q = f"Is the {o.name} on the {side} of the image?"
    full = (f"Yes, the {o.name} is on the {side} of the image." if side == actual
            else f"No, the {o.name} is on the {actual} of the image.")
    return _q(q, "yes" if side == actual else "no", full,
              [("select", [], f"{o.name} ({ids[i]})"), ("verify hposition", [0], side)],
              {"question": [(o.name, ids[i])], "fullAnswer": [(o.name, ids[i])]},
              ("positionVerify", "attr", "verify"), f"06-{o.name}_{side}")


TEMPLATES: tuple[Template, ...] = (t_query_color, t_relate_query, t_verify_color, t_relate_exist,
                                   t_choose_color, t_filter_exist, t_compare_color, t_verify_hposition)


def _record(qid: str, image_id: str, t: dict[str, Any]) -> dict[str, Any]:
    semantic = [{"operation": op, "dependencies": deps, "argument": arg} for op, deps, arg in t["ops"]]
    semantic_str = "->".join(f"{op}: {arg}" + (f" [{', '.join(map(str, deps))}]" if deps else "")
                             for op, deps, arg in t["ops"])
    detailed, semantic_type, structural = t["types"]
    return {
        "semantic": semantic, "entailed": [], "equivalent": [qid], "question": t["question"],
        "imageId": image_id, "isBalanced": True,
        "groups": {"global": None if t["answer"] in ("yes", "no") else structural, "local": t["local"]},
        "answer": t["answer"], "semanticStr": semantic_str, "annotations": t["annotations"],
        "types": {"detailed": detailed, "semantic": semantic_type, "structural": structural},
        "fullAnswer": t["fullAnswer"],
    }


def _scene_graph(objs: Objs, ids: list[str], w: int, h: int) -> dict[str, Any]:
    objects = {}
    for i, o in enumerate(objs):
        relations = []
        for j, other in enumerate(objs):
            for holds, name in ((left_of(o, other), "to the left of"), (left_of(other, o), "to the right of"),
                                (above(o, other), "above"), (above(other, o), "below")):
                if j != i and holds:
                    relations.append({"name": name, "object": ids[j]})
        objects[ids[i]] = {"name": o.name, "x": o.x, "y": o.y, "w": o.w, "h": o.h,
                           "attributes": [o.color], "relations": relations}
    return {"width": w, "height": h, "objects": objects}


def write_gqa_tree(out: Path, per_split: int, seed: int) -> None:
    """Write the miniature under ``out`` (``per_split`` questions for each of train and val)."""
    for s, split in enumerate(("train", "val")):
        rng = random.Random(f"vlir-gqa/{seed}/{split}")
        questions: dict[str, Any] = {}
        graphs: dict[str, Any] = {}
        next_object = 1_000_000 + 500_000 * s
        turn = s
        for n in range(max(0, math.ceil(per_split / 2))):
            image_id = str(2_400_000 + 10_000 * s + n)
            w, h = rng.choice(SIZES)
            names = rng.sample(NAMES, rng.randint(3, 5))
            colors = rng.sample(SHAPE_COLORS, len(names))
            if rng.random() < 0.35:  # some shared colours, so "same color" can be true
                colors[1] = colors[0]
            img, objs = draw_scene(rng, names, w, h, colors)
            ids = [str(next_object + k) for k in range(len(objs))]
            next_object += len(objs)
            save_image(img, out / "images" / f"{image_id}.jpg", "JPEG")
            graphs[image_id] = _scene_graph(objs, ids, w, h)
            for _ in range(2):
                if len(questions) >= per_split:
                    break
                for attempt in range(len(TEMPLATES)):
                    t = TEMPLATES[(turn + attempt) % len(TEMPLATES)](rng, objs, ids, w, h)
                    if t is not None:
                        break
                turn += 1
                qid = f"{(s + 1) * 1_000_000 + len(questions):08d}"
                questions[qid] = _record(qid, image_id, t)
        for folder, name, data in (("questions", f"{split}_balanced_questions.json", questions),
                                   ("sceneGraphs", f"{split}_sceneGraphs.json", graphs)):
            (out / folder).mkdir(parents=True, exist_ok=True)
            (out / folder / name).write_text(json.dumps(data), encoding="utf-8")


def _question(rng: random.Random, turn: int, objs: Objs, ids: list[str], w: int, h: int) -> dict[str, Any]:
    for attempt in range(len(TEMPLATES)):
        t = TEMPLATES[(turn + attempt) % len(TEMPLATES)](rng, objs, ids, w, h)
        if t is not None:
            return t
    raise AssertionError("t_query_color always applies")


def write_gqa_split_at_scale(out: Path, split: str, questions: int, images: int, seed: int = 0,
                             distinct_images: int = 32) -> dict[str, int]:
    """One split at the real size (GQA train-balanced: ~943k questions over ~72k scene graphs) in the
    official layout, for benchmarks of the read and the plan (``bench/full_size_gqa.py``).

    Why a second writer: :func:`write_gqa_tree` holds the whole split in memory and draws one image
    per two questions, hours at this size. Here questions and scene graphs stream to their files
    one record at a time, only ``distinct_images`` scenes are drawn, and every image id is a hard
    link to one of them (its scene graph is that scene's: answers stay truthful), so the tree costs
    the question and scene-graph files plus a few small JPEGs. Returns the file sizes in bytes."""
    out = Path(out)
    rng = random.Random(f"vlir-gqa-scale/{seed}/{split}")
    scenes = []
    for k in range(distinct_images):
        w, h = rng.choice(SIZES)
        names = rng.sample(NAMES, rng.randint(3, 5))
        img, objs = draw_scene(rng, names, w, h, rng.sample(SHAPE_COLORS, len(names)))
        path = out / "images" / f".scene{k}.jpg"
        save_image(img, path, "JPEG")
        scenes.append((path, objs, w, h))
    (out / "questions").mkdir(parents=True, exist_ok=True)
    (out / "sceneGraphs").mkdir(parents=True, exist_ok=True)
    q_path = out / "questions" / f"{split}_balanced_questions.json"
    g_path = out / "sceneGraphs" / f"{split}_sceneGraphs.json"
    written = 0
    with open(q_path, "w", encoding="utf-8") as qf, open(g_path, "w", encoding="utf-8") as gf:
        qf.write("{")
        gf.write("{")
        for n in range(images):
            image_id = str(2_000_000 + n)
            path, objs, w, h = scenes[n % distinct_images]
            link = out / "images" / f"{image_id}.jpg"
            if not link.exists():
                os.link(path, link)
            ids = [str(1_000_000 + 10 * n + k) for k in range(len(objs))]
            gf.write(("," if n else "") + json.dumps(image_id) + ":" + json.dumps(_scene_graph(objs, ids, w, h)))
            share = questions // images + (1 if n < questions % images else 0)
            for _ in range(share):
                qid = f"{10_000_000 + written:08d}"
                qf.write(("," if written else "") + json.dumps(qid) + ":"
                         + json.dumps(_record(qid, image_id, _question(rng, written, objs, ids, w, h))))
                written += 1
        qf.write("}")
        gf.write("}")
    return {"questions_bytes": q_path.stat().st_size, "scene_graphs_bytes": g_path.stat().st_size}

"""Sentence templates of the grounded annotator, and the seeded picker that varies them.

Every template states only what the annotator knows to be true: where an annotated region lies,
what the program step or the human answer says, how two boxes sit relative to each other. None may
mention how vlir knows it (no "annotation", "ground truth", "evidence", "OCR", "label", "box"); a
test scans all of them. Fields are filled with :meth:`str.format`.
"""

from __future__ import annotations

import random
from typing import Any

TEMPLATES: dict[str, tuple[str, ...]] = {
    # --- reading text (TextVQA, DocVQA, InfographicsVQA) ---
    "text_plan": (
        "The answer should be written somewhere in the image. The relevant text seems to be in "
        "the {where}, so I will zoom in there to read it.",
        "To answer this I need to read some text. It looks like it is in the {where}; let me "
        "zoom in on it.",
        "I should find the words that answer the question. There is writing in the {where} that "
        "looks relevant, so I'll take a closer look.",
        "This question is answered by text in the image. I'll zoom in on the {where} where it "
        "appears.",
        "Let me look closely at the text in the {where}; it should tell me what I need.",
    ),
    "text_read": (
        'Zoomed in, the text reads "{text}".',
        'Now I can read it clearly: "{text}".',
        'The close-up shows the words "{text}".',
        'In the zoomed view the text says "{text}".',
        'The enlarged region shows "{text}".',
    ),
    "text_context": (
        'It appears next to "{context}".',
        'It is written beside "{context}".',
        'Right by it is the text "{context}".',
    ),
    "conclude": (
        "So the answer is {answer}.",
        "Therefore, the answer is {answer}.",
        "That gives the answer: {answer}.",
        "So the answer should be {answer}.",
    ),
    # --- objects (GQA, VSR, M3CoT with regions) ---
    "plan_object": (
        "To answer this, I first need to find the {name}.",
        "Let me start by locating the {name}.",
        "First, I'll look for the {name} in the image.",
        "I need to find the {name} first.",
    ),
    "next_object": (
        "Next, I'll find the {name}.",
        "Now let me locate the {name}.",
        "I also need the {name}.",
    ),
    "seen_object": (
        "There is {a_name} in the {where} of the image.",
        "I can see {a_name} in the {where}.",
        "{A_name} is visible in the {where}.",
        "Here is {a_name}, in the {where} of the picture.",
    ),
    "seek_related": (
        "Next, I check for {a_name} {rel} {prev}.",
        "Now I look for {a_name} {rel} {prev}.",
        "Then I need to see whether there is {a_name} {rel} {prev}.",
    ),
    "found_related_s": (
        "There is {a_name} {rel} {prev}, in the {where}.",
        "I see {a_name} {rel} {prev}; it is in the {where}.",
        "{A_name} is {rel} {prev}, in the {where} of the image.",
    ),
    "found_related_o": (
        "{Prev} is {rel} {a_name}, which is in the {where}.",
        "I see that {prev} is {rel} {a_name} in the {where}.",
    ),
    "found_related_nobox": (
        "There is {a_name} {rel} {prev}.",
        "{A_name} is {rel} {prev}.",
    ),
    "seen_candidate": (
        "There is {a_name} in the {where}.",
        "I find {a_name} in the {where}.",
    ),
    "filter": (
        "Of these, the one that matters is {desc}.",
        "I focus on {desc}.",
        "The relevant one is {desc}.",
    ),
    "seek_filter": (
        "I check whether it is {value}.",
        "Next I check if it is {value}.",
    ),
    "query_name": ("It is {a_answer}.", "This is {a_answer}.", "That object is {a_answer}."),
    "query_attr": ("Its {attr} is {answer}.", "Looking closely, its {attr} is {answer}."),
    "query_color": ("It is {answer}.", "Its color is {answer}.", "It looks {answer}."),
    "query_position": ("It is on the {answer}.", "It is located on the {answer} side."),
    "query_material": ("It is made of {answer}.", "It looks like it is made of {answer}."),
    "verify_yes": ("Yes, it is {value}.", "It is indeed {value}.", "It is {value}."),
    "verify_no": ("It is not {value}.", "No, it is not {value}."),
    "verify_rel_yes": ("{Subj} is indeed {rel} {obj}.", "Yes, {subj} is {rel} {obj}."),
    "verify_rel_no": ("{Subj} is not {rel} {obj}.", "No, {subj} is not {rel} {obj}."),
    "exist_yes": ("So there is {a_desc}.", "So {a_desc} is there.", "That confirms there is {a_desc}."),
    "exist_check": ("I check whether there is {a_desc}.", "Is there {a_desc}? Let me see."),
    "exist_no": ("So there is no {desc}.", "There is no {desc} in the image."),
    "choose": ("It is {answer}, not {other}.", "Between {answer} and {other}, it is {answer}."),
    "choose_rel": ("{Subj} is {answer} {obj}.", "Looking at them, {subj} is {answer} {obj}."),
    "same_yes": ("Both have the same {attr}.", "They share the same {attr}."),
    "same_no": ("Their {attr_plural} differ.", "They do not have the same {attr}."),
    "common": ("What they have in common is their {answer}.", "They share the same {answer}."),
    "compare": ("Comparing them, the answer is {answer}.", "Looking at both, it is {answer}."),
    # --- spatial relations (VSR) ---
    "vsr_plan": (
        "I need to check where the {subj} is relative to the {obj}. Let me find the {subj} first.",
        "To judge this, I'll locate the {subj} and the {obj}. First the {subj}.",
        "The statement is about the {subj} and the {obj}. I'll start with the {subj}.",
    ),
    "vsr_subj": (
        "The {subj} is in the {where} of the image. Now the {obj}.",
        "Here is the {subj}, in the {where}. Next I look at the {obj}.",
    ),
    "vsr_obj": (
        "The {obj} is in the {where}.",
        "And the {obj} is in the {where} of the image.",
    ),
    "vsr_layout": (
        "Comparing the two, {layout}.",
        "Looking at their positions, {layout}.",
        "Side by side, {layout}.",
    ),
    "vsr_verdict_true": (
        "So the {subj} is {relation} the {obj}: the statement is true.",
        "This matches the claim that the {subj} is {relation} the {obj}, so it is true.",
    ),
    "vsr_verdict_false": (
        "So the {subj} is not {relation} the {obj}: the statement is false.",
        "This does not match the claim that the {subj} is {relation} the {obj}, so it is false.",
    ),
    # --- multiple choice with regions (M3CoT) ---
    "mc_look": ("Let me look at the {name}.", "I'll zoom in on the {name}.", "The {name} is relevant here."),
    "mc_seen": ("The {name} is in the {where}.", "I can see the {name} in the {where}."),
    "mc_conclude": (
        "Considering what these parts of the image show, the answer is option {answer}.",
        "Putting this together, option {answer} fits.",
    ),
    # --- one asked object (the zoom task): one wording each, the chain a tiny model learns in minutes ---
    "object_look": ("The {name}.",),
    "object_answer": ("It is {answer}.",),
}

#: Words no generated sentence may contain (checked by the tests over every template).
FORBIDDEN_WORDS = ("ground truth", "annotation", "annotated", "evidence", "ocr", "label", "bounding box")


def article(noun: str) -> str:
    """``a``/``an`` + noun ("an apple", "a cart"); plural-looking nouns get none ("some" reads odd)."""
    noun = noun.strip()
    if not noun:
        return noun
    if noun.endswith("s") and not noun.endswith("ss") and len(noun) > 3:
        return noun
    return ("an " if noun[0].lower() in "aeiou" else "a ") + noun


def capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


class Phrases:
    """Picks and fills templates with a :class:`random.Random` seeded per sample, so the same sample
    always gets the same sentences however the build is ordered or sharded."""

    def __init__(self, rng: random.Random):
        self.rng = rng

    def say(self, key: str, **fields: Any) -> str:
        template = self.rng.choice(TEMPLATES[key])
        filled = dict(fields)
        for name, value in fields.items():
            if isinstance(value, str):
                filled[name[:1].upper() + name[1:]] = capitalize(value)
        if "name" in fields and "a_name" not in fields:
            filled["a_name"] = article(fields["name"])
            filled["A_name"] = capitalize(filled["a_name"])
        text = template.format(**filled)
        return capitalize(text)


def where(box_center: tuple[float, float], width: float, height: float) -> str:
    """A plain position phrase for a point, read as "in the <phrase> (of the image)": "top left",
    "center", "lower middle", "right part"..."""
    cx, cy = box_center
    col = 0 if cx < width / 3 else (2 if cx > 2 * width / 3 else 1)
    row = 0 if cy < height / 3 else (2 if cy > 2 * height / 3 else 1)
    names = {
        (0, 0): "top left", (1, 0): "upper middle", (2, 0): "top right",
        (0, 1): "left part", (1, 1): "center", (2, 1): "right part",
        (0, 2): "bottom left", (1, 2): "lower middle", (2, 2): "bottom right",
    }
    return names[(col, row)]

"""What the teacher is asked, and how its answers are read.

The templates are package data (``vlir/prompts/*.txt``) and the answer format is
``vlir/schemas/teacher_chain.schema.json``; :func:`prompt_hash` covers all of them, so a record's
provenance and the cache key change whenever the wording or the schema does.

Pixel spaces (:class:`SentImage`): the teacher answers in pixels of the image *as sent*, and the
sent image is always a multiple of 28 px on each side within ``image_max_pixels``. That makes it a
fixed point of Qwen2.5-VL's ``smart_resize``, so a Qwen2.5-VL teacher (which answers in absolute
pixels of *its* resized input) and GPT-4o (told the size in the prompt) answer in the same space.
An image that fits the budget is only padded on the right and bottom to the next multiple of 28
(no resampling: boxes are original pixels, and no CPU is spent on a resize); a larger one is
downscaled to its ``smart_resize`` size. Boxes map back to original pixels by scaling with the sent
content size.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any, Callable

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from PIL import Image

from vlir import geometry
from vlir.geometry import PixelBudget
from vlir.records import Box, Chain, Look, Sample, Step, Think

TEMPLATE_NAMES = ("teacher_system", "teacher_user", "teacher_hints", "teacher_repair",
                  "judge_system", "judge_user")
IMAGE_PLACEHOLDER = "<image>"
JPEG_QUALITY = 90

#: What the judge answers. Small enough to live here; hashed into :func:`prompt_hash` with the rest.
JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"shows": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["shows", "reason"],
    "additionalProperties": False,
}

# Keywords OpenAI's strict structured outputs accept; the rest (minLength, $schema...) are checked
# locally only, so the schema sent on the wire is never refused for an unsupported keyword.
_WIRE_KEYS = {"type", "properties", "required", "additionalProperties", "items", "anyOf",
              "description", "enum", "minItems", "maxItems"}


class ParseError(ValueError):
    """An answer that cannot be used. ``reason`` is ``teacher_invalid_json``, ``teacher_schema`` or
    ``box_out_of_range``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@lru_cache(maxsize=None)
def template(name: str) -> Template:
    return Template(resources.files("vlir").joinpath("prompts", f"{name}.txt").read_text("utf-8"))


@lru_cache(maxsize=None)
def chain_schema() -> dict[str, Any]:
    text = resources.files("vlir").joinpath("schemas", "teacher_chain.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def _chain_validator() -> Draft202012Validator:
    """Built once (the schema checked, its keywords resolved); ~0.2 ms per answer after that
    (``bench/teacher_throughput.py`` prints the figure)."""
    return Draft202012Validator(chain_schema())


def schema_error(data: Any) -> str | None:
    """Why ``data`` breaks the chain schema (the most relevant error, with its path), or None."""
    error = best_match(_chain_validator().iter_errors(data))
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


@lru_cache(maxsize=None)
def prompt_hash() -> str:
    """sha256 (16 hex) over every template, the chain schema and the judge schema."""
    h = hashlib.sha256()
    for name in TEMPLATE_NAMES:
        h.update(name.encode() + b"\0" + template(name).template.encode("utf-8") + b"\0")
    h.update(json.dumps(chain_schema(), sort_keys=True).encode() + b"\0")
    h.update(json.dumps(JUDGE_SCHEMA, sort_keys=True).encode())
    return h.hexdigest()[:16]


def wire_schema(schema: Any) -> Any:
    """The schema as sent in ``response_format``: only keywords strict structured outputs accept."""
    if isinstance(schema, dict):
        out = {}
        for k, v in schema.items():
            if k not in _WIRE_KEYS:
                continue
            out[k] = {p: wire_schema(s) for p, s in v.items()} if k == "properties" else wire_schema(v)
        return out
    if isinstance(schema, list):
        return [wire_schema(v) for v in schema]
    return schema


_RESPONSE_FORMATS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}


def response_format(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    """``response_format`` for structured outputs, built once per schema object (the chain schema
    is cached and the judge's a constant) rather than re-walked for every request."""
    cached = _RESPONSE_FORMATS.get(name)
    if cached is None or cached[0] is not schema:
        cached = (schema, {"type": "json_schema", "json_schema": {
            "name": name, "schema": wire_schema(schema), "strict": True}})
        _RESPONSE_FORMATS[name] = cached
    return cached[1]


# ---------------------------------------------------------------------------------------------
# Requests
# ---------------------------------------------------------------------------------------------

@dataclass
class TeacherRequest:
    """One chat request. Image parts hold :data:`IMAGE_PLACEHOLDER`; ``image_ref`` stands in for the
    pixels in the request hash and ``encode_image`` makes the data URL only when the request is
    actually sent (a cache hit never encodes)."""

    kind: str  # "chain" | "repair" | "judge"
    messages: list[dict[str, Any]]
    image_ref: str
    encode_image: Callable[[], str]
    schema_name: str
    schema: dict[str, Any]

    def request_hash(self, params: dict[str, Any]) -> str:
        view = {"kind": self.kind, "messages": self.messages, "image": self.image_ref,
                "schema": self.schema_name, "params": params}
        return hashlib.sha256(json.dumps(view, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def body(self, model: str, params: dict[str, Any], structured: bool) -> bytes:
        """The request body as JSON bytes (serialised here, once, with the C encoder: the client's
        own per-field transform of a multi-100-kB message list costs more CPU than the rest)."""
        body: dict[str, Any] = {"model": model, "messages": self.wire_messages(),
                                "temperature": params["temperature"],
                                "max_completion_tokens": params["max_tokens"]}
        if structured:
            body["response_format"] = response_format(self.schema_name, self.schema)
        return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")

    def wire_messages(self) -> list[dict[str, Any]]:
        url = self.encode_image()
        out = []
        for m in self.messages:
            content = m["content"]
            if isinstance(content, list):
                content = [{"type": "image_url", "image_url": {"url": url}}
                           if p.get("type") == "image_url" else p for p in content]
            out.append({"role": m["role"], "content": content})
        return out


@lru_cache(maxsize=None)
def _system_text() -> str:
    return template("teacher_system").substitute(schema=json.dumps(chain_schema(), indent=1))


def teacher_budget(image_max_pixels: int) -> PixelBudget:
    """The sent image's budget: the default family's grid and least pixels, up to ``image_max_pixels``."""
    return PixelBudget(geometry.MODEL_PIXELS.min_pixels, image_max_pixels)


PAD_COLOR = (128, 128, 128)


@dataclass(frozen=True)
class SentImage:
    """How an original ``orig_width x orig_height`` image is sent: scaled to ``content_width x
    content_height`` and placed at the top-left of a ``width x height`` canvas (multiples of 28)."""

    width: int
    height: int
    content_width: int
    content_height: int
    orig_width: int
    orig_height: int

    @classmethod
    def plan(cls, width: int, height: int, budget: PixelBudget) -> "SentImage":
        """Pad when the padded image fits the budget, else ``smart_resize`` (raises ValueError for
        an aspect ratio beyond 200)."""
        f = budget.factor
        pw, ph = -(-width // f) * f, -(-height // f) * f
        if budget.min_pixels <= pw * ph <= budget.max_pixels and max(pw, ph) / min(pw, ph) <= 200:
            return cls(pw, ph, width, height, width, height)
        w, h = geometry.model_size(width, height, budget)
        return cls(w, h, w, h, width, height)

    @property
    def scale(self) -> tuple[float, float]:
        return self.content_width / self.orig_width, self.content_height / self.orig_height

    def to_sent(self, box: Box) -> list[int]:
        sx, sy = self.scale
        return [round(box.x1 * sx), round(box.y1 * sy), round(box.x2 * sx), round(box.y2 * sy)]

    def to_original(self, bbox: Any) -> Box:
        """A teacher's ``bbox_2d`` -> original pixels. Swapped corners (x1 > x2 or y1 > y2) are a
        ValueError like any other degenerate box: the format says ``[x1, y1, x2, y2]`` and a model
        that swaps them is not trusted to have meant the reordered box. Not clipped: a box outside
        the image is for the checks to reject."""
        sx, sy = self.scale
        x1, y1, x2, y2 = (float(v) for v in bbox)
        return Box(x1 / sx, y1 / sy, x2 / sx, y2 / sy)

    def data_url(self, image: Image.Image) -> str:
        """Scale (BICUBIC, as Qwen2-VL's processor) or pad, then JPEG with fixed settings."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        content = (self.content_width, self.content_height)
        if image.size != content:
            image = image.resize(content, Image.Resampling.BICUBIC, reducing_gap=2.0)
        if content != (self.width, self.height):
            canvas = Image.new("RGB", (self.width, self.height), PAD_COLOR)
            canvas.paste(image, (0, 0))
            image = canvas
        buf = io.BytesIO()
        image.save(buf, format="JPEG", quality=JPEG_QUALITY, optimize=False)
        return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def gold_answer(sample: Sample) -> str:
    """The most frequent ground-truth answer (ties: the first listed)."""
    answers = [a.strip() for a in sample.answers if a and a.strip()]
    if not answers:
        return ""
    counts = Counter(answers)
    return max(answers, key=lambda a: (counts[a], -answers.index(a)))


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"\w+", text.lower()))


def hint_lines(sample: Sample, sent: SentImage, max_hints: int) -> list[str]:
    """Evidence regions in sent-image pixels, the ones sharing words with the question or answers
    first (documents carry hundreds of OCR words; the teacher needs the few that matter)."""
    if max_hints <= 0 or not sample.evidence:
        return []
    query = _tokens(sample.question + " " + " ".join(sample.answers))
    ranked = sorted(enumerate(sample.evidence),
                    key=lambda ir: (-len(_tokens(ir[1].label) & query), ir[0]))
    lines = []
    for _, region in ranked[:max_hints]:
        clipped = geometry.clip(region.box, sample.width, sample.height)
        if clipped is None:
            continue
        box = sent.to_sent(clipped)
        label = " ".join(region.label.split())[:120] or region.kind
        lines.append(f"- {json.dumps(box)} {label}")
    return lines


def chain_request(sample: Sample, image: Image.Image, image_sha256: str, budget: PixelBudget,
                  hints: bool, max_hints: int) -> TeacherRequest:
    """The first request for a sample: system rules + schema, then image, question, gold answer,
    and (with ``hints``) the evidence boxes. The question text appears verbatim."""
    sent = SentImage.plan(sample.width, sample.height, budget)
    w, h = sent.width, sent.height
    lines = hint_lines(sample, sent, max_hints) if hints else []
    hint_text = template("teacher_hints").substitute(regions="\n".join(lines)) if lines else ""
    system = _system_text()
    user = template("teacher_user").substitute(width=w, height=h, question=sample.question,
                                               answer=gold_answer(sample), hints=hint_text)
    messages = [
        {"role": "system", "content": system},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE_PLACEHOLDER}},
                                     {"type": "text", "text": user}]},
    ]
    return TeacherRequest("chain", messages, f"sha256:{image_sha256}@{sent.content_width}x{sent.content_height}/{w}x{h}",
                          lambda: sent.data_url(image), "teacher_chain", chain_schema())


def repair_request(first: TeacherRequest, bad_content: str, error: str,
                   max_chars: int = 2000) -> TeacherRequest:
    """The one retry for an unusable answer: the conversation so far plus the error quoted back.
    Only the first ``max_chars`` of the bad answer (and of the error) are quoted: a runaway answer
    of megabytes is neither sent again nor cached as part of the repair request."""
    if len(bad_content) > max_chars:
        bad_content = f"{bad_content[:max_chars]}\n[... {len(bad_content) - max_chars} more characters cut]"
    if len(error) > max_chars:
        error = error[:max_chars] + " [...]"
    messages = first.messages + [
        {"role": "assistant", "content": bad_content},
        {"role": "user", "content": template("teacher_repair").substitute(error=error)},
    ]
    return TeacherRequest("repair", messages, first.image_ref, first.encode_image,
                          first.schema_name, first.schema)


def judge_request(crop_png: bytes, label: str) -> TeacherRequest:
    crop_sha = hashlib.sha256(crop_png).hexdigest()
    url = "data:image/png;base64," + base64.b64encode(crop_png).decode("ascii")
    messages = [
        {"role": "system", "content": template("judge_system").template},
        {"role": "user", "content": [{"type": "image_url", "image_url": {"url": IMAGE_PLACEHOLDER}},
                                     {"type": "text",
                                      "text": template("judge_user").substitute(label=label)}]},
    ]
    return TeacherRequest("judge", messages, f"sha256:{crop_sha}", lambda: url,
                          "judge_verdict", JUDGE_SCHEMA)


# ---------------------------------------------------------------------------------------------
# Answers
# ---------------------------------------------------------------------------------------------

_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """The first JSON object in ``text``: tolerates code fences, prose before (a ``<think>``
    preamble) and trailing text. Raises :class:`ParseError` (``teacher_invalid_json``)."""
    if not text or not text.strip():
        raise ParseError("teacher_invalid_json", "the reply is empty")
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for cand in candidates:
        for attempts, m in enumerate(re.finditer(r"\{", cand)):
            if attempts >= 64:
                break
            try:
                value, _ = decoder.raw_decode(cand, m.start())
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    snippet = " ".join(text.split())[:80]
    raise ParseError("teacher_invalid_json", f"the reply holds no JSON object (it starts {snippet!r})")


def parse_chain(text: str, sample: Sample, budget: PixelBudget) -> Chain:
    """Read a teacher answer into a :class:`Chain` with boxes in original pixels. Boxes are not
    clipped here: a box outside the image is the checks' business (``box_in_image``)."""
    sent = SentImage.plan(sample.width, sample.height, budget)
    data = extract_json(text)
    error = schema_error(data)
    if error is not None:
        raise ParseError("teacher_schema", error)
    steps: list[Step] = []
    for i, step in enumerate(data["steps"]):
        if "think" in step:
            steps.append(Think(step["think"].strip()))
            continue
        look = step["look"]
        try:
            box = sent.to_original(look["bbox_2d"])
        except (ValueError, OverflowError) as exc:
            # numbers the arithmetic cannot take (1e309 reads as inf) are no box at all
            huge = not all(math.isfinite(float(v)) and abs(float(v)) < 1e300 for v in look["bbox_2d"])
            raise ParseError("box_out_of_range" if huge else "teacher_schema",
                             f"at steps/{i}/look/bbox_2d: {exc}") from None
        steps.append(Look(box, look["label"].strip()))
    return Chain(tuple(steps), data["answer"].strip())


def parse_judge(text: str) -> bool:
    """The judge's verdict; a bare yes/no is accepted from servers that ignore the JSON request."""
    try:
        data = extract_json(text)
        if isinstance(data.get("shows"), bool):
            return data["shows"]
    except ParseError:
        pass
    word = re.match(r"\W*(yes|no|true|false)\b", text.strip().lower())
    if word:
        return word.group(1) in ("yes", "true")
    raise ParseError("teacher_invalid_json", "the judge's reply is neither {\"shows\": ...} nor yes/no")

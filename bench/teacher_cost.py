"""What a teacher costs for all of VLIR: prompt and completion tokens per record, read from the
manifests of real ``vlir build --annotator teacher`` runs, and dollars at two published prices.

Why: with a teacher the tokens, not the CPU, are the cost of the corpus, and a token count is only
as good as the tokenizer and image rule behind it. No real teacher can be reached from here, so a
loopback server (:class:`vlir.testing.openai_server.FakeOpenAIServer`) bills every request the
teacher client sends as the provider would, from the request itself:

* GPT-4o: text through o200k_base (``bpe-openai``), 3 tokens per message + its role + 3 priming the
  reply (OpenAI's cookbook rule), the ``response_format`` schema counted as its JSON's tokens
  (OpenAI does not publish how it renders it), the image by the detail=high rule on the image as
  sent: fit in 2048x2048, short side down to 768 (never up), 170 tokens per 512-px tile + 85. vlir
  sends no ``detail`` ("auto", the model may pick low: 85), so this is the upper bound.
* Qwen2.5-VL-72B: Qwen's BPE (``qwen.tiktoken`` shipped in ``dashscope``; Qwen2's split regex and
  special ids, NFC) over the Qwen2.5-VL chat template, the image as one ``<|image_pad|>`` per
  merged 28-px patch after ``smart_resize`` (vlir's rule, :mod:`vlir.geometry` on the family's
  grid) between ``<|vision_start|>``/``<|vision_end|>``; completion + 1 for the closing ``<|im_end|>``.
* The answer is realistic: the record's grounded chain (the chain vlir accepts) as the teacher's
  compact JSON in sent-image pixels; a record without one gets ``echo_chain_responder``'s.

Builds run per source and teacher, in this process through the CLI, on trees from the sample
writers (official layouts) drawn at the official image sizes of bench/source_costs.py; tokens per
record = the manifest's ``annotator_stats`` tokens / records asked (retries and repairs included as
the build counts them), scaled by the official train+val records. Not modelled: a real teacher's
longer or malformed answers and the repairs they cost (a repair resends the whole prompt), 429/5xx
retries (none here: retried attempts are not billed, only answers), the judge pass (off by default),
prompt-caching discounts, and real data's hint counts (the synthetic trees' evidence; each hint line
costs ``tokens_per_hint``, 24 lines at most).

    python bench/teacher_cost.py [--per-split 12] [--keep DIR]

Needs the bench extra (``pip install -e '.[bench]'``; ``make bench`` installs it). The last line,
also written to out/bench/teacher_cost.json, is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import importlib.util
import io
import json
import math
import os
import re
import sys
import tempfile
import threading
import time
import unicodedata
from pathlib import Path
from unittest import mock

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
import _timing as T  # noqa: E402
import source_costs as SC  # noqa: E402

from vlir.annotate.base import AnnotateInput, AnnotationError  # noqa: E402
from vlir.annotate.grounded import GroundedAnnotator  # noqa: E402
from vlir.annotate.teacher_config import DEFAULT_IMAGE_MAX_PIXELS  # noqa: E402
from vlir.annotate.teacher_prompt import SentImage, gold_answer, teacher_budget  # noqa: E402
from vlir.geometry import PixelBudget, smart_resize  # noqa: E402
from vlir.models.qwen2_5_vl import QWEN2_5_VL, QWEN_SPECIAL_TOKENS, QWEN_SPLIT_PATTERN  # noqa: E402
from vlir.records import Invalid, Think  # noqa: E402
from vlir.sources.registry import get_source  # noqa: E402
from vlir.testing.openai_server import FakeOpenAIServer, Reply, echo_chain_responder  # noqa: E402
from vlir.testing.openai_script import request_text  # noqa: E402

#: Published prices, USD per 1M tokens: (teacher option, offer, input, output, source, seen).
PRICES = (
    ("gpt-4o", "OpenAI gpt-4o", 2.50, 10.00,
     "https://models.wingman.actor/models/openai/gpt-4o (also pydantic/genai-prices openai.yml, "
     "prices_checked 2025-07-04)", "2026-12-04"),
    ("qwen2.5-vl-72b", "OpenRouter qwen/qwen2.5-vl-72b-instruct", 0.10, 0.40,
     "https://openrouter.ai/qwen/qwen-2.5-vl-72b-instruct", "2026-12-04"),
    ("qwen2.5-vl-72b", "OpenRouter, as pydantic/genai-prices recorded it (2025-06-22 to 2026-08-21)",
     0.70, 0.70, "https://github.com/pydantic/genai-prices prices/providers/openrouter.yml", "2026-12-04"),
)
#: Qwen2.5-VL's preprocessor budget as vLLM/SGLang serve it (3136..12845056 px); vlir's sent image
#: (multiples of 28, <= 1280 * 28 * 28 px) is a fixed point of it and of Model Studio's 1280-token cap
QWEN_SERVED = QWEN2_5_VL.view(PixelBudget(3136, 12845056))
INSTALL = "pip install -e '.[bench]'  (bpe-openai, dashscope, tiktoken)"
_SIZE = re.compile(r"The image is (\d+) x (\d+) pixels")
_QUESTION, _ANSWER = re.compile(r"^Question: (.*)$", re.M), re.compile(r"^Correct answer: (.*)$", re.M)
_HINT = re.compile(r"^- \[.*$", re.M)
#: a Qwen2.5 chat (the system and user turns :func:`tokenizers` renders) as Qwen2.5's own tokenizer
#: encodes it, as published in other projects' tests
QWEN_REFERENCE = [151644, 8948, 198, 2610, 525, 1207, 16948, 11, 3465, 553, 54364, 14817, 13, 1446, 525, 264,
                  10950, 17847, 13, 151645, 198, 151644, 872, 198, 3838, 374, 279, 6722, 315, 9625, 30, 151645,
                  198, 151644, 77091, 198]


def tokenizers():
    """(o200k_base, Qwen) encoders, each checked against ids published elsewhere."""
    import bpe_openai
    import tiktoken

    o200k = bpe_openai.get_encoding("o200k_base")
    assert o200k.encode("hello world") == [24912, 2375], "o200k_base is not GPT-4o's encoding"
    spec = importlib.util.find_spec("dashscope")  # only its data file: dashscope is never imported
    if spec is None:
        raise ImportError("No module named 'dashscope'")
    path = Path(spec.submodule_search_locations[0]) / "resources" / "qwen.tiktoken"
    ranks = {base64.b64decode(tok): int(rank) for tok, rank in
             (line.split() for line in path.read_bytes().splitlines() if line)}
    assert len(ranks) == 151643, f"{path}: {len(ranks)} ranks, Qwen2 has 151643"
    qwen = tiktoken.Encoding("qwen2", pat_str=QWEN_SPLIT_PATTERN, mergeable_ranks=ranks,  # specials in id order
                             special_tokens={t: len(ranks) + i for i, t in enumerate(QWEN_SPECIAL_TOKENS)})
    chat = qwen_chat([{"role": "system", "content": "You are Qwen, created by Alibaba Cloud. You are a helpful "
                       "assistant."}, {"role": "user", "content": "What is the capital of France?"}])
    assert qwen.encode(chat, allowed_special="all") == QWEN_REFERENCE, f"{path} is not Qwen2's vocabulary"
    assert qwen.encode("<|vision_start|><|image_pad|><|vision_end|>", allowed_special="all") == [151652, 151655, 151653]
    return o200k, qwen


def sent_size(part: dict) -> tuple[int, int]:
    """(width, height) of a data-URL image part, from its header."""
    data = base64.b64decode(part["image_url"]["url"].split(",", 1)[1])
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def gpt4o_image_tokens(width: int, height: int, upscale: bool = False) -> int:
    """OpenAI's detail=high rule; ``upscale`` also brings a short side under 768 up to 768."""
    s = min(1.0, 2048 / max(width, height))
    w, h = int(width * s), int(height * s)
    s = 768 / min(w, h) if upscale or min(w, h) > 768 else 1.0
    w, h = int(w * s), int(h * s)
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def qwen_image_tokens(width: int, height: int) -> int:
    h, w = smart_resize(height, width, QWEN_SERVED)
    assert (h, w) == (height, width), f"the sent {width}x{height} is not a smart_resize fixed point"
    return (h // QWEN2_5_VL.patch_size) * (w // QWEN2_5_VL.patch_size) // QWEN2_5_VL.merge_size ** 2


class Biller:
    """A responder for :class:`FakeOpenAIServer` that answers ``answer(body)`` and bills the
    request as ``teacher`` does; ``log`` keeps one entry per request (text and image tokens,
    hints, sent size)."""

    def __init__(self, teacher: str, encoders, answer):
        self.teacher, self.answer = teacher, answer
        self.o200k, self.qwen = encoders
        self.log: list[dict] = []
        self._lock = threading.Lock()

    def __call__(self, body: dict):
        content = self.answer(body)
        if not isinstance(content, str):  # a Status from the fallback responder
            return content
        images = [sent_size(p) for m in body["messages"] if isinstance(m["content"], list)
                  for p in m["content"] if p.get("type") == "image_url"]
        if self.teacher == "gpt-4o":
            text = 3 + sum(3 + len(self.o200k.encode(m["role"])) + sum(
                len(self.o200k.encode(p["text"])) for p in _parts(m) if p.get("type") == "text")
                for m in body["messages"])
            schema = ((body.get("response_format") or {}).get("json_schema") or {}).get("schema")
            schema_tokens = len(self.o200k.encode(json.dumps(schema))) if schema else 0
            text += schema_tokens
            image = sum(gpt4o_image_tokens(w, h) for w, h in images)
            completion = len(self.o200k.encode(content))
        else:
            rendered = unicodedata.normalize("NFC", qwen_chat(body["messages"]))
            text = len(self.qwen.encode(rendered, allowed_special="all")) - len(images)
            image = sum(qwen_image_tokens(w, h) for w, h in images)  # the pads the one placeholder becomes
            completion = len(self.qwen.encode(unicodedata.normalize("NFC", content))) + 1
            schema_tokens = 0  # guided decoding: the schema is no prompt text
        count = (lambda t: len(self.o200k.encode(t))) if self.teacher == "gpt-4o" else \
            (lambda t: len(self.qwen.encode(unicodedata.normalize("NFC", t), allowed_special="all")))
        hints = _HINT.findall(request_text(body))
        with self._lock:
            self.log.append({"text": text, "image": image, "completion": completion, "sizes": images,
                             "hints": len(hints), "hint_tokens": sum(count(h + "\n") for h in hints),
                             "system": count(body["messages"][0]["content"]), "schema": schema_tokens})
        return Reply(content, prompt_tokens=text + image, completion_tokens=completion)


def _parts(message: dict) -> list[dict]:
    content = message["content"]
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def qwen_chat(messages: list[dict]) -> str:
    """The Qwen2.5-VL-Instruct chat template's rendering (``vlir.models.qwen2_5_vl.
    qwen2_5_vl_chat_template``, with a system message and the generation prompt): each turn
    ``<|im_start|>role\\n...<|im_end|>\\n``, an image ``<|vision_start|><|image_pad|><|vision_end|>``."""
    out = []
    for m in messages:
        body = "".join("<|vision_start|><|image_pad|><|vision_end|>" if p.get("type") == "image_url"
                       else p.get("text", "") for p in _parts(m))
        out.append(f"<|im_start|>{m['role']}\n{body}<|im_end|>\n")
    return "".join(out) + "<|im_start|>assistant\n"


def grounded_answers(root: Path) -> tuple[dict, int]:
    """(question, gold answer) -> (sample, grounded chain) over every tree, and how many samples
    have no grounded chain (they get the echo responder's answer)."""
    annotator, blank, found, missing = GroundedAnnotator(), Image.new("RGB", (1, 1)), {}, 0
    for name in SC.SOURCES:
        for split in ("train", "val"):
            for sample in get_source(name).iter_samples(root / name, split):
                if isinstance(sample, Invalid):
                    continue
                try:
                    chain = annotator.annotate(AnnotateInput(sample, blank, ""))
                except AnnotationError:
                    missing += 1
                    continue
                found.setdefault((sample.question.strip(), gold_answer(sample)), (sample, chain))
    return found, missing


def chain_answer(chains: dict):
    """The answer function: the record's grounded chain as teacher JSON, in the sent image's pixels."""
    budget = teacher_budget(DEFAULT_IMAGE_MAX_PIXELS)

    def answer(body: dict):
        text = request_text(body)
        q, a, size = _QUESTION.search(text), _ANSWER.search(text), _SIZE.search(text)
        hit = chains.get((q.group(1).strip(), a.group(1).strip())) if q and a else None
        if hit is None or size is None:
            return echo_chain_responder(body)
        sample, chain = hit
        sent = SentImage.plan(sample.width, sample.height, budget)
        if (sent.width, sent.height) != (int(size.group(1)), int(size.group(2))):
            return echo_chain_responder(body)
        steps = [{"think": s.text} if isinstance(s, Think) else
                 {"look": {"bbox_2d": sent.to_sent(s.box), "label": s.label or "region"}} for s in chain.steps]
        return json.dumps({"steps": steps, "answer": chain.answer}, ensure_ascii=False, separators=(",", ":"))

    return answer


class Cycle:
    """A one-element sequence whose element is the next of ``items`` each time: ``rng.choice`` over
    it takes GQA's sizes in turn (equal shares, as bench/source_costs.py weighs them)."""

    def __init__(self, items):
        self.items, self.i = list(items), -1

    def __len__(self) -> int:
        return 1

    def __getitem__(self, _):
        self.i += 1
        return self.items[self.i % len(self.items)]


def write_trees(root: Path, per_split: int, seed: int = 0) -> None:
    """The sample writers, drawing at source_costs' official sizes: their size constants set to
    them (GQA's in turn), the infographics padded to full height, VSR drawn at 640x480 (its COCO
    sizes fixed after)."""
    from vlir.sources.samples import docvqa, gqa, infographicsvqa, textvqa, vsr

    size = {s: sizes for s, (sizes, _, _) in SC.SOURCES.items()}
    (iw, ih), (vw, vh) = size["infographicsvqa"][0], size["vsr"][0]
    draw_info, draw_vsr = infographicsvqa._draw, vsr.draw_scene

    def tall(rng):
        img, lines, facts = draw_info(rng)
        canvas = Image.new("RGB", (iw, ih), (250, 248, 240))
        canvas.paste(img, (0, 0))
        return canvas, lines, facts

    with contextlib.ExitStack() as stack:
        for module, name, value in ((gqa, "SIZES", Cycle(size["gqa"])), (textvqa, "SIZES", tuple(size["textvqa"])),
                                    (docvqa, "PAGE", size["docvqa"][0]), (infographicsvqa, "WIDTH", iw),
                                    (infographicsvqa, "_draw", tall),
                                    (vsr, "draw_scene", lambda rng, names, w, h, *a: draw_vsr(rng, names, vw, vh, *a))):
            stack.enter_context(mock.patch.object(module, name, value))
        for name in SC.SOURCES:
            get_source(name).write_sample_tree(root / name, per_split, seed)
    for path in (root / "vsr" / "annotations").glob("instances_*.json"):
        coco = json.loads(path.read_text())
        for image in coco["images"]:
            image.update(width=vw, height=vh)
        path.write_text(json.dumps(coco))


def build(source: str, root: Path, out: Path, url: str, model: str) -> dict:
    """One real teacher build through the CLI; the manifest's teacher counters and split counts."""
    from vlir.cli import main as vlir

    with contextlib.redirect_stdout(io.StringIO()):
        rc = vlir(["-q", "build", "--source", source, "--root", str(root / source), "--split", "train,val",
                   "--out", str(out), "--annotator", "teacher", "--base-url", url, "--model", model,
                   "--api-key-env", "VLIR_BENCH_TEACHER_KEY", "--no-progress"])
    if rc != 0:
        raise SystemExit(f"vlir build --source {source} --annotator teacher exited {rc}")
    manifest = json.loads((out / "manifest.json").read_text())
    stats, splits = manifest["annotator_stats"], manifest["splits"].values()
    return {**{k: stats[k] for k in ("records", "requests", "retries", "repairs", "prompt_tokens",
                                     "completion_tokens")},
            "accepted": sum(s["accepted"] for s in splits), "rejected": sum(s["rejected"] for s in splits)}


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-split", type=int, default=12,
                        help="questions per split per source (12: GQA's 3 sizes on 4 images each)")
    parser.add_argument("--keep", type=Path, default=None, help="write the trees and builds here (kept)")
    args = parser.parse_args()
    try:
        encoders = tokenizers()
    except ImportError as exc:
        raise SystemExit(f"teacher_cost: needs the bench extra ({exc}): {INSTALL}") from None
    os.environ.setdefault("VLIR_BENCH_TEACHER_KEY", "loopback")  # a local server: no real key
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="teacher_cost_")))
        write_trees(work / "trees", args.per_split)
        chains, no_chain = grounded_answers(work / "trees")
        answer, results = chain_answer(chains), {}
        for teacher in ("gpt-4o", "qwen2.5-vl-72b"):
            biller = Biller(teacher, encoders, answer)
            with FakeOpenAIServer(responder=biller, model=teacher) as server:
                for source in SC.SOURCES:
                    biller.log.clear()
                    got = build(source, work / "trees", work / "builds" / teacher / source, server.base_url, teacher)
                    log, n = list(biller.log), got["records"]
                    got.update(prompt_per_record=round(got["prompt_tokens"] / n, 1),
                               completion_per_record=round(got["completion_tokens"] / n, 1),
                               image_tokens=round(mean(e["image"] for e in log), 1),
                               text_tokens=round(mean(e["text"] for e in log), 1),
                               hints=round(mean(e["hints"] for e in log), 2),
                               tokens_per_hint=round(sum(e["hint_tokens"] for e in log) /
                                                     max(1, sum(e["hints"] for e in log)), 1),
                               system_tokens=log[0]["system"] if log else 0,
                               schema_tokens=log[0]["schema"] if log else 0,
                               sent_sizes=sorted({f"{w}x{h}" for e in log for w, h in e["sizes"]}))
                    if teacher == "gpt-4o":
                        got["image_tokens_if_upscaled"] = round(mean(
                            sum(gpt4o_image_tokens(w, h, upscale=True) for w, h in e["sizes"]) for e in log), 1)
                    results.setdefault(teacher, {})[source] = got
    wall = time.perf_counter() - start
    print(f"teacher_cost: {args.per_split} questions per split per source, {wall:.1f} s; {no_chain} samples "
          f"without a grounded chain got echo answers; load average {T.load_average()}")
    g0, q0 = results["gpt-4o"]["gqa"], results["qwen2.5-vl-72b"]["gqa"]
    print(f"every prompt holds the system text (GPT-4o {g0['system_tokens']} tokens + {g0['schema_tokens']} of "
          f"response_format schema; Qwen {q0['system_tokens']}); a hint line costs ~{g0['tokens_per_hint']:.0f} "
          f"(Qwen ~{q0['tokens_per_hint']:.0f}: a token per digit)")
    print("| source | image size(s) sent | hints/record | accepted/asked | train+val records | GPT-4o prompt/record | "
          "GPT-4o completion/record | Qwen2.5-VL prompt/record | Qwen2.5-VL completion/record |")
    print("|---|---|---|---|---|---|---|---|---|")
    totals = {t: [0.0, 0.0] for t in results}
    for source, (_, _, records) in SC.SOURCES.items():
        g, q = results["gpt-4o"][source], results["qwen2.5-vl-72b"][source]
        for t, r in (("gpt-4o", g), ("qwen2.5-vl-72b", q)):
            totals[t][0] += r["prompt_per_record"] * records
            totals[t][1] += r["completion_per_record"] * records
        print(f"| {source} | {', '.join(g['sent_sizes'])} | {g['hints']} | {g['accepted']}/{g['records']} | "
              f"{records:,} | {g['prompt_per_record']:,.0f} "
              f"(image {g['image_tokens']:,.0f}) | {g['completion_per_record']:,.0f} | {q['prompt_per_record']:,.0f} "
              f"(image {q['image_tokens']:,.0f}) | {q['completion_per_record']:,.0f} |")
    costs = []
    for teacher, offer, price_in, price_out, url, seen in PRICES:
        tin, tout = totals[teacher]
        usd = tin * price_in / 1e6 + tout * price_out / 1e6
        costs.append({"teacher": teacher, "offer": offer, "input_usd_per_mtok": price_in,
                      "output_usd_per_mtok": price_out, "source": url, "seen": seen, "usd": round(usd)})
        print(f"all of VLIR, {offer} (${price_in:.2f} / ${price_out:.2f} per 1M; {url}, seen {seen}): "
              f"{tin / 1e6:,.1f} M prompt + {tout / 1e6:,.1f} M completion tokens = ${usd:,.0f}")
    T.write_result("teacher_cost", {
        "per_split": args.per_split, "wall_s": round(wall, 1), "records_without_grounded_chain": no_chain,
        "sources": results, "total_tokens": {t: {"prompt": round(v[0]), "completion": round(v[1])}
                                             for t, v in totals.items()}, "costs": costs})


if __name__ == "__main__":
    main()

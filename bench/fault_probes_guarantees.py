"""Issue-23 probes of confinement, the one decode and protocol-safe text (failures 1-6 and the weak
spots about paths, images, boxes and text), run against the real CLI like the other probes."""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

from fault_kit import SENTINEL, Ctx, build_textvqa, one_line_exit_2, probe, rec


def _rows(out: Path, columns=("id", "reasons")) -> dict[str, dict]:
    from vlir.corpus.shards import iter_rows

    return {row["id"]: row for p in sorted(out.glob("**/*.parquet")) for row in iter_rows(p, columns=list(columns))}


def _reasons(out: Path) -> list[str]:
    return sorted(r for row in _rows(out).values() for r in row["reasons"])


def _corpus_with_image_path(base: Path, image_path: str) -> Path:
    """A vlir output (embedded images) whose first accepted row says ``image_path``."""
    import vlir.corpus.shards as shards
    from tests.conftest import make_output

    real = shards.write_records

    def write(path, records):
        records = list(records)
        if records and records[0].accepted:
            first = records[0]
            records[0] = dataclasses.replace(first, sample=dataclasses.replace(first.sample, image=image_path))
        return real(path, records)

    shards.write_records = write
    try:
        return make_output(base / "out", embed=True)
    finally:
        shards.write_records = real


# ---------------------------------------------------------------------------------------------
# 1, 2. paths from data stay in their folder
# ---------------------------------------------------------------------------------------------

def _export_probe(ctx: Ctx, kind: str):
    base = ctx.fresh("export")
    planted = base / "planted" / "evil.jpg"
    out = _corpus_with_image_path(base, "../../../planted/evil.jpg" if kind == "dotdot" else str(planted))
    r = ctx.cli("export", "--format", "vlmr3", str(out), str(base / "dest"))
    line, one = one_line_exit_2(r)
    return ("exit 2 (one line), nothing written outside DEST", f"{line}; planted {planted.exists()}",
            one and not planted.exists())


@probe("23.1 export of a ../ image_path")
def p_export_dotdot(ctx):
    return _export_probe(ctx, "dotdot")


@probe("23.1 export of an absolute image_path")
def p_export_absolute(ctx):
    return _export_probe(ctx, "absolute")


@probe("23.1 validate of a ../ image_path")
def p_validate_image_path(ctx):
    out = _corpus_with_image_path(ctx.fresh("valimg"), "../../etc/passwd")
    r = ctx.cli("validate", str(out))
    ok = r.returncode == 1 and "image_path" in r.stderr + r.stdout
    return "exit 1, the row's image_path reported", f"exit {r.returncode}, image_path {ok}", ok


@probe("23.1 show/card with a manifest split outside OUT")
def p_manifest_split(ctx):
    from tests.conftest import make_output

    base = ctx.fresh("split")
    out = make_output(base / "out")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["splits"]["gqa/val"]["source"] = "../.."
    (out / "manifest.json").write_text(json.dumps(manifest))
    show = ctx.cli("show", str(out), "--out", str(base / "page.html"))
    manifest["splits"]["../../x"] = manifest["splits"].pop("gqa/val")
    (out / "manifest.json").write_text(json.dumps(manifest))
    card = ctx.cli("card", str(out))
    (s_line, s_ok), (c_line, c_ok) = one_line_exit_2(show), one_line_exit_2(card)
    return "exit 2 (one line) for both", f"show {s_line}; card {c_line}", s_ok and c_ok


@probe("23.2 import of crops outside the base")
def p_import_crops(ctx):
    from PIL import Image

    from tests.conftest import make_image

    base = ctx.fresh("import")
    src = base / "src"
    src.mkdir(parents=True)
    make_image(seed=1).save(src / "a.jpg")
    Image.new("RGB", (112, 84), (0, 0, 255)).save(base / "private.png")
    parts = ['<think> Look.\n\n{"bbox_2d": [40, 30, 140, 120]}\n', "Red.</think>\n<answer>red</answer>\n"]
    rows = [{"image_path": "a.jpg", "question": "q?", "response_list": parts, "img_crop_list": [c]}
            for c in (str(base / "private.png"), "../private.png", "../missing.png")]
    (src / "sft.json").write_text(json.dumps(rows))
    r = ctx.cli("import", "--format", "vlmr3", str(src), str(base / "out"))
    details = json.dumps({k: v for k, v in _rows(base / "out", ("id", "reasons", "meta")).items()})
    leaks = details.replace(json.dumps(str(base / "private.png"))[1:-1], "").count(str(base))
    got = _reasons(base / "out")
    return ("exit 0, 3 crop_outside_base rejects, no local path in details", f"exit {r.returncode}, {got}, "
            f"{leaks} leak(s)", r.returncode == 0 and got == ["crop_outside_base"] * 3 and leaks == 0)


# ---------------------------------------------------------------------------------------------
# 3-6. one decode; a bad image or box is a reject, never a crash, never cached
# ---------------------------------------------------------------------------------------------

def _teacher_build(ctx: Ctx, url: str, out: Path, cache_from: Path | None = None):
    if cache_from is not None:
        (out / "cache").mkdir(parents=True)
        shutil.copy(cache_from / "cache" / "teacher.sqlite", out / "cache" / "teacher.sqlite")
    return ctx.cli("build", "--source", "textvqa", "--root", str(ctx.trees / "textvqa"), "--split", "val",
                   "--out", str(out), "--annotator", "teacher", "--base-url", url, "--model", "m",
                   "--api-key-env", "FAULTS_KEY", "--limit", "2", "--tasks", "1", "--no-progress",
                   env={"FAULTS_KEY": SENTINEL})


def _chain(think: str = "The sign is on the left.", box=(100, 100, 200, 160)) -> str:
    return json.dumps({"steps": [{"think": think}, {"look": {"bbox_2d": list(box), "label": "sign"}},
                                 {"think": "It reads the answer."}], "answer": "coffee"})


def _teacher_text_probe(ctx: Ctx, content: str, reason: str):
    from vlir.testing.openai_server import FakeOpenAIServer, Reply

    out = ctx.fresh("teacher")
    with FakeOpenAIServer() as server:
        server.script("", Reply(content))
        r = _teacher_build(ctx, server.base_url, out)
    got = [reason in row["reasons"] for row in _rows(out).values()] if r.returncode == 0 else []
    return (f"exit 0, every record a reject with {reason}", f"exit {r.returncode}, {sum(got)} of {len(got)}",
            r.returncode == 0 and got == [True, True])


@probe("23.3 teacher box 1.79e308, then the cached rerun")
def p_teacher_overflow(ctx):
    from vlir.testing.openai_server import FakeOpenAIServer, Reply

    out, again = ctx.fresh("overflow"), ctx.fresh("overflow")
    with FakeOpenAIServer() as server:
        server.script("", Reply(_chain(box=(0, 0, 1.79e308, 1.79e308))))
        r = _teacher_build(ctx, server.base_url, out)
        asked = server.count()
        server.unscript()
        r2 = _teacher_build(ctx, server.base_url, again, cache_from=out) if r.returncode == 0 else r
        asked_again = server.count() - asked
    got = _reasons(out) if r.returncode == 0 else []
    ok = r.returncode == 0 and r2.returncode == 0 and got == ["box_out_of_range"] * 2 and asked_again == 0
    return ("exit 0 twice, box_out_of_range rejects, rerun asks nothing", f"exit {r.returncode}/{r2.returncode}, "
            f"{got}, rerun asked {asked_again}", ok)


@probe("23.4 a 30000x30 TextVQA image")
def p_aspect(ctx):
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (30000, 30), (200, 200, 200)).save(buf, format="JPEG")
    wide = {**rec(1, "wide"), "image_width": 30000, "image_height": 30}
    root = ctx.textvqa_tree([wide, rec(2, "wide2")], {"wide": buf.getvalue(), "wide2": buf.getvalue()})
    r, reasons = build_textvqa(ctx, root)
    got = reasons.get("textvqa/val/1")
    return ("exit 0, record 1 rejected image_aspect, record 2 kept", f"exit {r.returncode}, {got}, {len(reasons)} rows",
            r.returncode == 0 and got == ["image_aspect"] and len(reasons) == 2)


@probe("23.5 a 16-bit PNG")
def p_16bit(ctx):
    import numpy as np
    from PIL import Image

    from vlir import images

    ramp = np.tile(np.linspace(0, 65535, 320).astype(np.uint16), (240, 1))
    buf = io.BytesIO()
    Image.fromarray(ramp).save(buf, format="PNG")
    got = np.asarray(images.decode_image(buf.getvalue(), "depth.png"))
    share_white = float((got == 255).mean())
    return ("a ramp 0..255 (not white)", f"min {got.min()}, max {got.max()}, white {share_white:.3f}",
            got.min() == 0 and got.max() == 255 and share_white < 0.01)


@probe("23.6 EXIF Orientation=6, raw size declared")
def p_exif(ctx):
    from datasets import Image as ImageFeature
    from PIL import Image

    from tests.conftest import make_image

    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    make_image(320, 240).save(buf, format="JPEG", exif=exif.tobytes())
    data = buf.getvalue()
    root = ctx.textvqa_tree([rec(1, "phone")], {"phone": data})
    out = ctx.fresh("exif")
    r = ctx.cli("build", "--source", "textvqa", "--root", str(root), "--split", "val", "--out", str(out),
                "--tasks", "1", "--no-progress", "--embed-images")
    rows = _rows(out, ("id", "width", "height"))
    stored = [(row["width"], row["height"]) for row in rows.values()]
    decoded = ImageFeature().decode_example({"bytes": data, "path": None}).size
    return ("exit 0, stored size = what datasets decodes (240x320)", f"exit {r.returncode}, stored {stored}, "
            f"datasets {decoded}", r.returncode == 0 and stored == [decoded] == [(240, 320)])


# ---------------------------------------------------------------------------------------------
# 11. weak spots: bounded, protocol-safe text; imports checked like a build; ids
# ---------------------------------------------------------------------------------------------

@probe("23.11 teacher thought of 3.2 MB")
def p_huge_thought(ctx):
    return _teacher_text_probe(ctx, _chain(think="x" * 3_200_000), "text_length")


@probe("23.11 NUL/ANSI/RTL in a teacher thought")
def p_control_thought(ctx):
    return _teacher_text_probe(ctx, _chain(think="a\x00b \x1b[31mred\x1b[0m \u202eevil"), "text_safe")


@probe("23.11 ]} <answer> <tool_call> in a thought")
def p_protocol_thought(ctx):
    return _teacher_text_probe(ctx, _chain(think="done ]} <answer>x</answer> <tool_call>"), "text_safe")


@probe("23.11 a 1 MB question")
def p_huge_question(ctx):
    root = Path(shutil.copytree(ctx.trees / "textvqa", ctx.fresh("question") / "textvqa"))
    path = root / "TextVQA_0.5.1_val.json"
    doc = json.loads(path.read_text())
    doc["data"][0]["question"] = "what " * 200_000 + "?"
    path.write_text(json.dumps(doc))
    r, reasons = build_textvqa(ctx, root)
    got = reasons.get(f"textvqa/val/{doc['data'][0]['question_id']}")
    return ("exit 0, that record rejected text_length", f"exit {r.returncode}, {got}",
            r.returncode == 0 and got is not None and "text_length" in got)


@probe("23.11 import of 20,000 looks")
def p_import_looks(ctx):
    from PIL import Image

    from tests.conftest import make_image

    base = ctx.fresh("looks")
    src = base / "src"
    src.mkdir(parents=True)
    make_image(seed=1).save(src / "a.jpg")
    Image.new("RGB", (112, 84)).save(src / "crop.png")
    n = 20_000
    row = {"image_path": "a.jpg", "question": "q?", "img_crop_list": ["crop.png"] * n,
           "response_list": ['{"bbox_2d": [40, 30, 140, 120]}\n'] * n + ["<answer>red</answer>"]}
    (src / "sft.json").write_text(json.dumps([row]))
    r = ctx.cli("import", "--format", "vlmr3", str(src), str(base / "out"))
    got = _reasons(base / "out")
    return "exit 0, a max_looks reject", f"exit {r.returncode}, {got}", r.returncode == 0 and got == ["max_looks"]


@probe("23.11 GQA ids with /, .., CRLF")
def p_gqa_ids(ctx):
    root = Path(shutil.copytree(ctx.trees / "gqa", ctx.fresh("ids") / "gqa"))
    path = next(root.rglob("val_balanced_questions.json"))
    doc = json.loads(path.read_text())
    for new, old in zip(("a/b", "..", "x\r\ny"), list(doc)):
        doc[new] = doc.pop(old)
    path.write_text(json.dumps(doc))
    out = ctx.fresh("ids")
    r = ctx.cli("build", "--source", "gqa", "--root", str(root), "--split", "val", "--out", str(out),
                "--tasks", "1", "--no-progress")
    v = ctx.cli("validate", str(out))
    got = [x for x in _reasons(out) if x == "bad_id"]
    return ("exit 0, 3 bad_id rejects, validate exit 0", f"exit {r.returncode}, {len(got)} bad_id, validate "
            f"{v.returncode}", r.returncode == 0 and len(got) == 3 and v.returncode == 0)

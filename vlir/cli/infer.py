"""``vlir infer`` (one question, the chain printed with its crops) and ``vlir eval`` (benchmark
scores over VLIR shards or a source adapter). torch and transformers load inside the commands."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Optional

import typer

from vlir.cli import app, fail

_BLOCK = re.compile(r"\n?<\|vision_start\|><\|image_pad\|><\|vision_end\|>")


def _engine(model: Path, max_crops: int, max_new_tokens: int, temperature: float, top_p: float,
            seed: int, mode: str, device: str, dtype: Optional[str], min_pixels: Optional[int],
            max_pixels: Optional[int]):
    """Load a checkpoint and wrap it in a rollout engine (bad settings exit 2)."""
    from vlir.rollout import Rollout, RolloutConfig
    from vlir.train.model import load_model

    if not model.is_dir():
        fail(f"--model {model} is not a checkpoint directory")
    try:
        config = RolloutConfig(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                               max_crops=max_crops, mode=mode, seed=seed)
        loaded, processor = load_model(model, dtype=dtype, device=device, min_pixels=min_pixels,
                                       max_pixels=max_pixels)
    except ValueError as exc:
        fail(str(exc))
    return Rollout(loaded, processor, config)


def _segments(text: str) -> list[str]:
    """The assistant text split at its crop images (one more piece than crops)."""
    return _BLOCK.split(text)


def _write_html(path: Path, question: str, traj, names: list[str], original: str) -> None:
    parts = [f"<!doctype html><meta charset='utf-8'><title>vlir infer</title>",
             "<style>body{font:15px/1.5 sans-serif;max-width:60em;margin:2em auto}"
             "pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em}img{max-width:100%;border:1px solid #999}"
             "figure{margin:1em 0}</style>",
             f"<h1>{html.escape(question)}</h1>",
             f"<figure><img src='{html.escape(original)}' alt='original with boxes'>"
             "<figcaption>original image, crop boxes drawn</figcaption></figure>"]
    for i, piece in enumerate(_segments(traj.text)):
        parts.append(f"<pre>{html.escape(piece)}</pre>")
        if i < len(names):
            box = ", ".join(f"{v:.0f}" for v in traj.boxes[i].as_list())
            parts.append(f"<figure><img src='{html.escape(names[i])}' alt='crop {i + 1}'>"
                         f"<figcaption>crop {i + 1}: [{box}] (original pixels), zoom "
                         f"{traj.crops[i].scale:.2f}</figcaption></figure>")
    parts.append(f"<p><b>answer:</b> {html.escape(str(traj.answer))} &middot; finish: "
                 f"{html.escape(traj.finish_reason)} &middot; {traj.num_sampled} tokens</p>")
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")


@app.command()
def infer(
    model: Path = typer.Option(..., "--model", help="Local Qwen2.5-VL checkpoint (e.g. a vlir SFT/GRPO output)."),
    image: Path = typer.Option(..., "--image", help="The image to ask about."),
    question: str = typer.Option(..., "--question", help="The question."),
    out: Path = typer.Option(Path("out/infer"), "--out", help="Folder for the crops (and the HTML page)."),
    write_html: bool = typer.Option(False, "--html", help="Also write OUT/index.html with the crops inline."),
    max_crops: int = typer.Option(8, "--max-crops", min=0, help="Crops per answer (the released agent: 8)."),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", min=1, help="Sampled-token budget."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32/bf16/fp16 (default: fp32 on CPU, bf16 else)."),
    min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="Override the image budget."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Override the image budget."),
) -> None:
    """Answer one question with the crop-and-zoom loop; print the reasoning and save each crop."""
    from PIL import ImageDraw

    from vlir import images

    try:
        picture, _ = images.load_image(image)
    except (OSError, images.ImageError) as exc:
        fail(f"--image {image}: {exc}")
    engine = _engine(model, max_crops, max_new_tokens, temperature, top_p, seed, "kv", device, dtype,
                     min_pixels, max_pixels)
    [traj] = engine.generate([(question, picture)])
    out.mkdir(parents=True, exist_ok=True)
    names = []
    for i, crop in enumerate(traj.crops, 1):
        name = f"crop_{i}.png"
        (out / name).write_bytes(crop.png)
        names.append(name)
    marked = picture.convert("RGB")
    draw = ImageDraw.Draw(marked)
    for box in traj.boxes:
        draw.rectangle(box.as_list(), outline=(255, 0, 0), width=max(2, marked.width // 200))
    marked.save(out / "original.png")
    pieces = _segments(traj.text)
    for i, piece in enumerate(pieces):
        typer.echo(piece)
        if i < len(names):
            typer.echo(f"[crop {i + 1}: {out / names[i]}]")
    (out / "trajectory.json").write_text(json.dumps({
        "question": question, "text": traj.text, "answer": traj.answer, "finish_reason": traj.finish_reason,
        "boxes": [b.as_list() for b in traj.boxes], "crops": names, "tokens": traj.num_sampled,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if write_html:
        _write_html(out / "index.html", question, traj, names, "original.png")
        typer.echo(f"html: {out / 'index.html'}", err=True)
    typer.echo(f"answer: {traj.answer}  (finish: {traj.finish_reason}, crops: {len(traj.crops)})", err=True)


@app.command("eval")
def eval_(
    model: Optional[Path] = typer.Option(None, "--model", help="Local Qwen2.5-VL checkpoint."),
    data: Optional[Path] = typer.Option(None, "--data", help="OUT/<source>/<split> folder or a part-*.parquet."),
    source: Optional[str] = typer.Option(None, "--source", help="Instead of --data: a source adapter..."),
    root: Optional[Path] = typer.Option(None, "--root", help="...its official download folder..."),
    split: Optional[str] = typer.Option(None, "--split", help="...and split."),
    out: Path = typer.Option(Path("out/eval"), "--out", help="Folder for predictions.jsonl and scores.json."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate the first K questions."),
    max_crops: int = typer.Option(8, "--max-crops", min=0, help="Crops per answer (the released agent: 8)."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Questions rolled out together."),
    max_new_tokens: int = typer.Option(1024, "--max-new-tokens", min=1, help="Sampled-token budget."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    mode: str = typer.Option("kv", "--mode", help="kv (cache reuse) or reprefill (reference)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32/bf16/fp16."),
    min_pixels: Optional[int] = typer.Option(None, "--min-pixels", help="Override the image budget."),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="Override the image budget."),
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="A published benchmark (vstar, hrbench4k, "
                                            "mme_realworld, treebench, ...) read from --root: see the README."),
    protocol: str = typer.Option("vlmr3", "--protocol", help="With --benchmark: vlmr3, model or avg@K."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="With --benchmark: re-score this "
                                               "predictions.jsonl (no model)."),
    write_sample: Optional[Path] = typer.Option(None, "--write-sample", help="With --benchmark: write a sample "
                                                "tree in its official layout here."),
    write_html: bool = typer.Option(False, "--html", help="With --benchmark: OUT/index.html with the crops."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="With --benchmark: LLM judge where the "
                                              "official script uses one (key from $OPENAI_API_KEY); off: rule-based."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="OpenAI-compatible endpoint."),
) -> None:
    """Run the rollout engine over a benchmark and score it with each source's official metric."""
    if benchmark is not None:
        from vlir.cli.benchmark import eval_benchmark

        return eval_benchmark(benchmark, root=root, model=model, out=out, protocol_name=protocol, limit=limit,
                              predictions=predictions, write_sample=write_sample, html=write_html,
                              batch_size=batch_size, max_new_tokens=max_new_tokens, max_crops=max_crops,
                              temperature=temperature, seed=seed, mode=mode, device=device, dtype=dtype,
                              judge_model=judge_model, judge_base_url=judge_base_url, min_pixels=min_pixels,
                              max_pixels=max_pixels)
    if model is None:
        fail("--model is required")
    from tqdm import tqdm

    from vlir import evaluate
    from vlir.images import ImageError

    if (data is None) == (source is None):
        fail("give either --data OUT/<source>/<split> or --source NAME --root DIR --split SPLIT")
    if data is not None:
        if not data.exists():
            fail(f"--data {data} does not exist")
        items = evaluate.shard_items(data)
    else:
        if root is None or split is None:
            fail("--source needs --root and --split")
        items = evaluate.source_items(source, root, split)
    engine = _engine(model, max_crops, max_new_tokens, temperature, 1.0, seed, mode, device, dtype,
                     min_pixels, max_pixels)
    with tqdm(total=limit, desc="eval", unit="q", disable=None) as bar:
        try:
            scores = evaluate.evaluate(engine, items, out, limit=limit, batch_size=batch_size, on_batch=bar.update)
        except (FileNotFoundError, ImageError) as exc:
            fail(str(exc))
    if not scores["n"]:
        fail(f"no questions found in {data or root}")
    typer.echo(evaluate.format_table(scores))
    typer.echo(f"wrote {out / evaluate.PREDICTIONS} and {out / evaluate.SCORES}", err=True)

"""``vlir infer`` (one question, the chain printed with its crops) and ``vlir eval`` (benchmark
scores over VLIR shards or a source adapter). torch and transformers load inside the commands."""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Optional

import typer

from vlir.cli import app, fail
from vlir.protocol import split_at_images
from vlir.rollout.config import MAX_CROPS

AGENTS = ("vlir", "vlmr3")


class Agent:
    """The loop settings both commands share: a preset (``--agent``) and flags that override it."""

    agent = typer.Option(None, "--agent", help="Loop preset: vlir or vlmr3 (the released VLM-R3 agent, e.g. for "
                         "its checkpoint: 8 rounds x 2048 tokens, newline after each crop image, bad calls "
                         "skipped, its pixel budgets). Default: the preset and loop settings the checkpoint "
                         "was trained with (its vlir_inference.json), else vlir. Flags below override it.")
    instruction = typer.Option(None, "--instruction", help="Text appended to the question (default: what the "
                               "checkpoint was trained with, else the VLM-R3 instruction; \"\" for none).")
    max_rounds = typer.Option(None, "--max-rounds", min=1, help="Generation rounds (vlmr3: 8; vlir: no limit).")
    tokens_per_round = typer.Option(None, "--tokens-per-round", min=1,
                                    help="Tokens per round (vlmr3: 2048; vlir: no limit).")
    image_newline = typer.Option(None, "--image-newline/--no-image-newline",
                                 help="Write a newline after each crop image (vlmr3: yes; vlir: no).")
    bad_box = typer.Option(None, "--bad-box", help="A bad crop call: skip (go on, default) or end the answer.")
    min_pixels = typer.Option(None, "--min-pixels", help="Image budget (vlmr3: 3136; vlir: the checkpoint's).")
    max_pixels = typer.Option(None, "--max-pixels", help="Image budget (vlmr3: 1605632; vlir: the checkpoint's).")
    crop_min_pixels = typer.Option(None, "--crop-min-pixels", help="Crop budget (default 3136).")
    crop_max_pixels = typer.Option(None, "--crop-max-pixels", help="Crop budget (default 802816).")
    engine = typer.Option("local", "--engine", help="local (load --model here) or openai (the loop over an "
                          "OpenAI-compatible server that continues assistant turns with images, e.g. vLLM).")
    base_url = typer.Option(None, "--base-url", help="With --engine openai: the server, e.g. http://127.0.0.1:8000/v1.")
    api_key_env = typer.Option("OPENAI_API_KEY", "--api-key-env", help="With --engine openai: the variable "
                               "holding the key (unset: 'EMPTY', what vLLM takes).")


def _engine(model: Path, device: str, dtype: Optional[str], agent: Optional[str], min_pixels: Optional[int],
            max_pixels: Optional[int], crop_min_pixels: Optional[int], crop_max_pixels: Optional[int],
            engine: str = "local", base_url: Optional[str] = None, api_key_env: str = "OPENAI_API_KEY",
            instruction: Optional[str] = None, **settings):
    """The preset with the given settings (None = the preset's) through the one factory
    (:func:`vlir.rollout.build_engine`); bad settings exit 2. Without ``--agent`` the checkpoint's
    own preset and loop settings (:mod:`vlir.rollout.trained`) sit under the flags; its chat
    (instruction ...) is the factory's default. ``engine="openai"``: the served backend over
    ``base_url``, ``model`` being the served name."""
    from vlir.rollout import build_engine, rollout_config, trained

    if engine not in ("local", "openai"):
        fail(f"--engine must be local or openai, got {engine!r}")
    if agent is not None and agent not in AGENTS:
        fail(f"--agent must be one of {', '.join(AGENTS)}, got {agent!r}")
    if engine == "openai":
        if not base_url:
            fail("--engine openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        settings = {k: v for k, v in settings.items() if k != "mode"}
    elif (problem := _checkpoint_problem(model)):  # truncated or missing weights: one line, no traceback
        fail(f"--model {problem}")
    try:
        preset = agent or trained.preset(model) or "vlir"
        if agent is None:  # the checkpoint's loop, under the flags given
            settings = {**trained.loop_settings(model), **{k: v for k, v in settings.items() if v is not None}}
        config = rollout_config(preset, crop_min_pixels=crop_min_pixels, crop_max_pixels=crop_max_pixels,
                                min_pixels=min_pixels, max_pixels=max_pixels,
                                engine="served" if engine == "openai" else "local",
                                base_url=[base_url] if base_url else None, **settings)
        built = build_engine(str(model) if engine == "openai" else model, config, device=device, dtype=dtype,
                             api_key_env=api_key_env,
                             chat_overrides=None if instruction is None else {"instruction": instruction})
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    built.settings["preset"] = preset
    return built


def _checkpoint_problem(model: Path) -> str | None:
    from vlir.identity import checkpoint_problem

    return checkpoint_problem(model)


def _write_html(path: Path, question: str, traj, names: list[str], original: str) -> None:
    parts = [f"<!doctype html><meta charset='utf-8'><title>vlir infer</title>",
             "<style>body{font:15px/1.5 sans-serif;max-width:60em;margin:2em auto}"
             "pre{white-space:pre-wrap;background:#f6f6f6;padding:.6em}img{max-width:100%;border:1px solid #999}"
             "figure{margin:1em 0}</style>",
             f"<h1>{html.escape(question)}</h1>",
             f"<figure><img src='{html.escape(original)}' alt='original with boxes'>"
             "<figcaption>original image, crop boxes drawn</figcaption></figure>"]
    for i, piece in enumerate(split_at_images(traj.text)):
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
    model: Path = typer.Option(..., "--model",
                               help="Local Qwen2.5-VL or Qwen3-VL checkpoint (e.g. a vlir SFT/GRPO output)."),
    image: Path = typer.Option(..., "--image", help="The image to ask about."),
    question: str = typer.Option(..., "--question", help="The question."),
    out: Path = typer.Option(Path("out/infer"), "--out", help="Folder for the crops (and the HTML page)."),
    write_html: bool = typer.Option(False, "--html", help="Also write OUT/index.html with the crops inline."),
    max_crops: Optional[int] = typer.Option(None, "--max-crops", min=0, help=f"Crops per answer (default {MAX_CROPS})."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="Sampled-token budget (vlir: 1024; vlmr3: 8 x 2048)."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy (as the authors' benchmark runs)."),
    top_p: float = typer.Option(1.0, "--top-p", help="Nucleus sampling mass."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32/bf16/fp16 (default: fp32 on CPU, bf16 else)."),
    agent: Optional[str] = Agent.agent, max_rounds: Optional[int] = Agent.max_rounds,
    tokens_per_round: Optional[int] = Agent.tokens_per_round, image_newline: Optional[bool] = Agent.image_newline,
    bad_box: Optional[str] = Agent.bad_box, min_pixels: Optional[int] = Agent.min_pixels,
    max_pixels: Optional[int] = Agent.max_pixels, crop_min_pixels: Optional[int] = Agent.crop_min_pixels,
    crop_max_pixels: Optional[int] = Agent.crop_max_pixels,
    engine_name: str = Agent.engine, base_url: Optional[str] = Agent.base_url, api_key_env: str = Agent.api_key_env,
    instruction: Optional[str] = Agent.instruction,
) -> None:
    """Answer one question with the crop-and-zoom loop; print the reasoning and save each crop."""
    from PIL import ImageDraw

    from vlir import images

    try:
        picture, _ = images.load_image(image)
    except (OSError, images.ImageError) as exc:
        fail(f"--image {image}: {exc}")
    engine = _engine(model, device, dtype, agent, min_pixels, max_pixels, crop_min_pixels, crop_max_pixels,
                     max_crops=max_crops, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                     seed=seed, max_rounds=max_rounds, tokens_per_round=tokens_per_round,
                     image_newline=image_newline, bad_box=bad_box, engine=engine_name, base_url=base_url,
                     api_key_env=api_key_env, instruction=instruction)
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
    pieces = split_at_images(traj.text)
    for i, piece in enumerate(pieces):
        typer.echo(piece)
        if i < len(names):
            typer.echo(f"[crop {i + 1}: {out / names[i]}]")
    (out / "trajectory.json").write_text(json.dumps({
        "question": question, "text": traj.text, "answer": traj.answer, "finish_reason": traj.finish_reason,
        "boxes": [b.as_list() for b in traj.boxes], "crops": names, "tokens": traj.num_sampled,
        "bad_calls": traj.bad_calls, "agent": engine.settings,
    }, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if write_html:
        _write_html(out / "index.html", question, traj, names, "original.png")
        typer.echo(f"html: {out / 'index.html'}", err=True)
    typer.echo(f"answer: {traj.answer}  (finish: {traj.finish_reason}, crops: {len(traj.crops)})", err=True)


@app.command("eval")
def eval_(
    model: Optional[Path] = typer.Option(None, "--model", help="Local Qwen2.5-VL or Qwen3-VL checkpoint."),
    data: Optional[Path] = typer.Option(None, "--data", help="OUT/<source>/<split> folder or a part-*.parquet."),
    source: Optional[str] = typer.Option(None, "--source", help="Instead of --data: a source adapter..."),
    root: Optional[Path] = typer.Option(None, "--root", help="...its official download folder..."),
    split: Optional[str] = typer.Option(None, "--split", help="...and split."),
    out: Path = typer.Option(Path("out/eval"), "--out", help="Folder for predictions.jsonl and scores.json."),
    limit: Optional[int] = typer.Option(None, "--limit", min=1, help="Evaluate the first K questions."),
    max_crops: Optional[int] = typer.Option(None, "--max-crops", min=0, help=f"Crops per answer (default {MAX_CROPS})."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Questions rolled out together."),
    max_new_tokens: Optional[int] = typer.Option(None, "--max-new-tokens", min=1,
                                                 help="Sampled-token budget (vlir: 1024; vlmr3: 8 x 2048)."),
    temperature: float = typer.Option(0.0, "--temperature", min=0.0, help="0 = greedy (as the authors' benchmark runs)."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed."),
    mode: str = typer.Option("kv", "--mode", help="kv (cache reuse) or reprefill (reference)."),
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1..."),
    dtype: Optional[str] = typer.Option(None, "--dtype", help="fp32/bf16/fp16."),
    agent: Optional[str] = Agent.agent, max_rounds: Optional[int] = Agent.max_rounds,
    tokens_per_round: Optional[int] = Agent.tokens_per_round, image_newline: Optional[bool] = Agent.image_newline,
    bad_box: Optional[str] = Agent.bad_box, min_pixels: Optional[int] = Agent.min_pixels,
    max_pixels: Optional[int] = Agent.max_pixels, crop_min_pixels: Optional[int] = Agent.crop_min_pixels,
    crop_max_pixels: Optional[int] = Agent.crop_max_pixels,
    benchmark: Optional[str] = typer.Option(None, "--benchmark", help="A published benchmark (vstar, hrbench4k, "
                                            "mme_realworld, treebench, ...) read from --root: see the README."),
    protocol: str = typer.Option("vlmr3", "--protocol", help="With --benchmark: the eval settings (budgets, "
                                 "sampling, samples per question): vlmr3, model or avg@K (docs/benchmarks.md)."),
    predictions: Optional[Path] = typer.Option(None, "--predictions", help="With --benchmark: re-score this "
                                               "predictions.jsonl (no model)."),
    write_sample: Optional[Path] = typer.Option(None, "--write-sample", help="With --benchmark: write a sample "
                                                "tree in its official layout here."),
    write_html: bool = typer.Option(False, "--html", help="With --benchmark: OUT/index.html with the crops."),
    judge_model: Optional[str] = typer.Option(None, "--judge-model", help="With --benchmark: LLM judge where the "
                                              "official script uses one (key from $OPENAI_API_KEY); off: rule-based."),
    judge_base_url: Optional[str] = typer.Option(None, "--judge-base-url", help="OpenAI-compatible endpoint."),
    judge_input: str = typer.Option("response", "--judge-input", help="What the judge is shown: response "
                                    "(the whole response, as the official scripts) or answer (the <answer> content)."),
    engine_name: str = Agent.engine, base_url: Optional[str] = Agent.base_url, api_key_env: str = Agent.api_key_env,
    instruction: Optional[str] = Agent.instruction,
) -> None:
    """Run the rollout engine over a benchmark and score it with each source's official metric."""
    if benchmark is not None:
        from vlir.cli.benchmark import eval_benchmark

        if engine_name != "local":
            fail("--benchmark runs the local engine only; use --engine openai with --data or --source")

        return eval_benchmark(benchmark, root=root, model=model, out=out, protocol_name=protocol, limit=limit,
                              predictions=predictions, write_sample=write_sample, html=write_html,
                              batch_size=batch_size, max_new_tokens=max_new_tokens, max_crops=max_crops,
                              temperature=temperature, seed=seed, mode=mode, device=device, dtype=dtype,
                              judge_model=judge_model, judge_base_url=judge_base_url, min_pixels=min_pixels,
                              max_pixels=max_pixels, judge_input=judge_input, instruction=instruction)
    if model is None:
        fail("--model is required")
    from vlir.eval import evaluate
    from vlir.progress import bar as progress_bar
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
    settings = dict(agent=agent, min_pixels=min_pixels, max_pixels=max_pixels, crop_min_pixels=crop_min_pixels,
                    crop_max_pixels=crop_max_pixels, max_crops=max_crops, max_new_tokens=max_new_tokens,
                    temperature=temperature, seed=seed, mode=mode, max_rounds=max_rounds,
                    tokens_per_round=tokens_per_round, image_newline=image_newline, bad_box=bad_box,
                    source=source, split=split, limit=limit)
    if engine_name == "local" and (problem := _checkpoint_problem(model)):
        fail(f"--model {problem}")
    try:  # before the model loads: OUT holding another evaluation is refused (docs/run-identity.md)
        evaluate.claim_out(out, data if data is not None else root, model, settings)
    except ValueError as exc:
        fail(str(exc))
    engine = _engine(model, device, dtype, agent, min_pixels, max_pixels, crop_min_pixels, crop_max_pixels,
                     max_crops=max_crops, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed,
                     mode=mode, max_rounds=max_rounds, tokens_per_round=tokens_per_round,
                     image_newline=image_newline, bad_box=bad_box, engine=engine_name, base_url=base_url,
                     api_key_env=api_key_env, instruction=instruction)
    total = limit if limit is not None or data is None else _shard_rows(data)  # the bar's ETA
    with progress_bar(total=total, desc="eval", unit="q") as bar:
        try:
            scores = evaluate.evaluate(engine, items, out, limit=limit, batch_size=batch_size, on_batch=bar.update)
        except (FileNotFoundError, ImageError) as exc:
            fail(str(exc))
    if not scores["n"]:
        fail(f"no questions found in {data or root}")
    typer.echo(evaluate.format_table(scores))
    typer.echo(f"wrote {out / evaluate.PREDICTIONS} and {out / evaluate.SCORES}", err=True)


def _shard_rows(data: Path) -> int:
    """Rows of a shard or split folder, from the Parquet footers (no data read)."""
    import pyarrow.parquet as pq

    files = [data] if data.is_file() else sorted(data.glob("part-*.parquet"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)

"""``vlir eval --benchmark NAME``: the benchmark path of the ``eval`` command (the options live on
``vlir eval`` in :mod:`vlir.cli.infer`, which dispatches here).

Three uses:

* ``--write-sample DIR``: write a small tree in the benchmark's official layout (no model);
* ``--predictions P.jsonl``: re-score saved predictions by the official rule (no model, no data);
* ``--root DIR --model CKPT``: evaluate a checkpoint with the rollout engine under the eval settings ``--protocol`` names
  (:mod:`vlir.eval.benchmarks.presets`).

Bad input (unknown benchmark or protocol, wrong folder, missing checkpoint) exits 2 with one line.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vlir.cli import fail


def build_engine(model: Path, settings, mode: str, device: str, dtype: Optional[str], chat_overrides=None):
    """The eval settings' loop (:meth:`~vlir.eval.benchmarks.presets.EvalSettings.rollout_config`)
    through the one factory; returns ``(engine, info)`` with the effective budgets for scores.json."""
    from vlir.rollout import build_engine as factory

    config = settings.rollout_config(mode)
    engine = factory(model, config, device=device, dtype=dtype, chat_overrides=chat_overrides)
    budget = engine.model_budget
    info = {"image_pixels": [budget.min_pixels, budget.max_pixels],
            "crop_pixels": [engine.crop_budget.min_pixels, engine.crop_budget.max_pixels],
            "mode": mode, "device": device, "dtype": dtype or "default", "agent": settings.rollout,
            "loop": config.describe()}
    return engine, info


def _judge(judge_model: Optional[str], judge_base_url: Optional[str], out: Path):
    if judge_model is None:
        return None
    from vlir.eval.benchmarks.judge import Judge

    return Judge(judge_model, out / "judge_cache.sqlite", base_url=judge_base_url)


def eval_benchmark(name: str, *, root: Optional[Path], model: Optional[Path], out: Path, protocol_name: str,
                   limit: Optional[int], predictions: Optional[Path], write_sample: Optional[Path], html: bool,
                   batch_size: int, max_new_tokens: int, max_crops: int, temperature: float, seed: int, mode: str,
                   device: str, dtype: Optional[str], judge_model: Optional[str] = None,
                   judge_base_url: Optional[str] = None, sample_size: int = 8, min_pixels: Optional[int] = None,
                   max_pixels: Optional[int] = None, judge_input: str = "response",
                   instruction: Optional[str] = None) -> None:
    from vlir import identity
    from vlir.eval.benchmarks import base, presets, runner
    from vlir.eval.benchmarks.base import BenchmarkLayoutError

    try:
        bench = base.get(name)
    except ValueError as exc:
        fail(str(exc))
    if write_sample is not None:
        bench.write_sample(write_sample, n=sample_size)
        typer.echo(f"wrote a {name} sample tree ({sample_size} items) under {write_sample}", err=True)
        return
    if judge_model is None and judge_base_url is not None:
        fail("--judge-base-url needs --judge-model")
    try:
        # every benchmark takes the judge options; one whose official rule asks no LLM refuses them
        bench = bench.configure(judge=_judge(judge_model, judge_base_url, out), judge_input=judge_input)
    except ValueError as exc:
        fail(str(exc))
    try:
        if predictions is not None:
            if not predictions.is_file():
                fail(f"--predictions {predictions} is not a file")
            known = None
            if root is not None:  # the benchmark's items: rows naming other ids are counted, left out
                if not root.exists():
                    fail(f"--root {root} does not exist")
                known = {item.id for item in bench.items(root)}
            scores = runner.rescore(bench, predictions, out, html=html, known_ids=known)
        else:
            if root is None or model is None:
                fail("--benchmark needs --root DIR and --model CKPT (or --predictions P.jsonl, or --write-sample DIR)")
            if not root.exists():
                fail(f"--root {root} does not exist")
            settings = presets.preset(protocol_name, temperature=temperature if temperature > 0 else None,
                                      max_new_tokens=max_new_tokens, max_crops=max_crops, seed=seed,
                                      min_pixels=min_pixels, max_pixels=max_pixels)
            items = checked_items(bench, root)  # the layout is checked before the model loads
            if (problem := identity.checkpoint_problem(model)):
                fail(f"--model {problem}")
            model_info = {"model": str(model.resolve()), "model_sha256": identity.model_sha256(model)}
            runner.claim_out(out, bench, settings, model_info, root)  # before the model loads
            engine, info = build_engine(model, settings, mode, device, dtype,
                                        None if instruction is None else {"instruction": instruction})
            info.update(model_info)
            scores = _run(bench, items, engine, out, settings, batch_size, limit, info, html, root)
    except (BenchmarkLayoutError, ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    typer.echo(summary_line(scores))
    typer.echo(f"wrote {out / runner.PREDICTIONS}, {out / runner.SCORES} and {out / 'report.md'}", err=True)


def checked_items(bench, root: Path):
    """``bench.items(root)`` with its first item already read: a wrong ``--root`` (a layout error,
    or no item at all) fails here, in one line, before a model is loaded."""
    import itertools

    items = bench.items(root)
    first = next(items, None)
    if first is None:
        raise ValueError(f"--root {root}: no {bench.name} items found there")
    return itertools.chain([first], items)


def _run(bench, items, engine, out, settings, batch_size, limit, info, html, root):
    from vlir.eval.benchmarks import runner
    from vlir.progress import bar as progress_bar

    with progress_bar(total=limit, desc=bench.name, unit="item") as bar:
        def progress(n: int, acc: float) -> None:
            bar.update(n)
            bar.set_postfix(acc=f"{100 * acc:.1f}")
        return runner.run(bench, items, runner.engine_generate(engine), out, settings,
                          batch_size=batch_size, limit=limit, info=info, progress=progress, html=html,
                          root=root)


def summary_line(scores: dict) -> str:
    s = scores["scores"]
    cats = ", ".join(f"{c} {100 * v['score']:.2f}" for c, v in s.get("categories", {}).items())
    spread = f" ± {100 * s['overall_std']:.2f}" if "overall_std" in s else ""
    return (f"{scores['benchmark']}: {100 * s['overall']:.2f}{spread} over {s['n']} items ({cats}); judge: "
            f"{json.dumps(scores['judge']) if not isinstance(scores['judge'], str) else scores['judge']}")

"""Format verbs: ``vlir export`` and ``vlir import`` (see :mod:`vlir.formats`)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional, TypeVar

import typer

from vlir.cli import app, fail

T = TypeVar("T")
FORMAT_HELP = "The other side's format: vlmr3 (the VLM-R3 authors' SFT records)."
EXPORT_HELP = ("vlmr3 (the VLM-R3 authors' SFT records), hf (a Hub-ready corpus: images embedded, card, "
               "configs) or sharegpt (LLaMA-Factory / ms-swift multimodal messages + images).")


def _format(name: str, known: tuple[str, ...] | None = None) -> None:
    from vlir.formats import FORMATS

    known = known or FORMATS
    if name not in known:
        fail(f"--format {name}: unknown format (known: {', '.join(known)})")


def _with_bar(enabled: bool, desc: str, work: Callable[[Optional[Callable[..., None]]], T]) -> T:
    """``work(tick)`` under a tqdm bar ticked once a record (off: no bar and ``tick`` None; the bar
    stays silent when stderr is not a terminal); the bar is closed however ``work`` ends."""
    if not enabled:
        return work(None)
    from vlir.progress import bar as progress_bar

    bar = progress_bar(unit="rec", desc=desc)
    try:
        return work(lambda *_: bar.update(1))
    finally:
        bar.close()


def _sft_pixels(end: str, verb: str):
    """``--min-pixels`` / ``--max-pixels``: the authors' SFT image budget the boxes ``verb`` (are,
    were) written for; export and import take the same pair (unset: the model family's default)."""
    return typer.Option(None, f"--{end}-pixels", min=1,
                        help=f"Image budget the boxes {verb} written for (their SFT --{end}_pixels; "
                             "default: the model family's, theirs).")


def _budget(min_pixels: Optional[int], max_pixels: Optional[int], default, flag: str):
    """The knob of a ``--X-min-pixels/--X-max-pixels`` pair as the one budget type (None when
    neither is given: the config's default; one given: the other is ``default``'s)."""
    from vlir.geometry import PixelBudget

    if min_pixels is None and max_pixels is None:
        return None
    try:
        return PixelBudget(min_pixels or default.min_pixels, max_pixels or default.max_pixels)
    except ValueError as exc:
        fail(f"{flag}: {exc}")


@app.command()
def export(
    out: Path = typer.Argument(..., help="A vlir output folder (holding manifest.json)."),
    dest: Path = typer.Argument(..., help="Folder to write (new or empty)."),
    fmt: str = typer.Option(..., "--format", help=EXPORT_HELP),
    min_pixels: Optional[int] = _sft_pixels("min", "are"),
    max_pixels: Optional[int] = _sft_pixels("max", "are"),
    model_family: Optional[str] = typer.Option(None, "--model-family", help="vlmr3/sharegpt: the box "
                                               "convention of the bbox numbers (qwen2_5_vl: pixels, the "
                                               "default; qwen3_vl: 0-1000)."),
    instruction: Optional[str] = typer.Option(None, "--instruction", help="sharegpt: the text after the "
                                              "question (default: the VLM-R3 crop-tool instruction)."),
    images: str = typer.Option("copy", "--images", help="copy: originals under DEST/images; reference: "
                               "a path relative to DEST pointing at the corpus's source root."),
    path_prefix: str = typer.Option("", "--path-prefix", help="vlmr3: prepended to every written path "
                                    "(their loader opens paths relative to its working directory)."),
    split: Optional[list[str]] = typer.Option(None, "--split", help="Only this split, e.g. train or "
                                              "gqa/train (repeatable; default: all)."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Write a corpus for another tool: the authors' SFT file DEST/vlmr3_sft.json (vlmr3), a
    Hub-ready folder to upload with huggingface-cli (hf), or LLaMA-Factory's dataset (sharegpt)."""
    from vlir.formats import EXPORT_FORMATS

    _format(fmt, EXPORT_FORMATS)
    if fmt == "hf":
        return _export_hf(out, dest, progress)
    from vlir.models.registry import default_family, family_for

    try:
        family = family_for(model_family) if model_family else default_family()
        budget = family.budget(min_pixels, max_pixels)
    except ValueError as exc:
        fail(f"--model-family/--min-pixels/--max-pixels: {exc}")
    if fmt == "sharegpt":
        return _export_sharegpt(out, dest, budget, instruction, images, split, progress)
    from vlir.formats.vlmr3 import ExportConfig, ExportError, export_corpus

    try:
        cfg = ExportConfig(budget=budget, images=images, path_prefix=path_prefix,
                           splits=tuple(split or ()))
        summary = _with_bar(progress, "export", lambda tick: export_corpus(out, dest, cfg, tick))
    except (ValueError, ExportError) as exc:
        fail(str(exc))
    typer.echo(f"wrote {summary['records']} records to {dest / summary['data_file']} "
               f"({summary.get('crops_written', 0)} crops, {summary.get('images_written', 0)} images)")


def _export_hf(out: Path, dest: Path, progress: bool) -> None:
    from vlir.formats.hf import UPLOAD_HINT, HubExportError, export_hub
    from vlir.images import ImageError

    try:
        manifest = _with_bar(progress, "export", lambda tick: export_hub(out, dest, tick))
    except (HubExportError, ImageError) as exc:
        fail(str(exc))
    rows = sum(s["rows"] for s in manifest["shards"])
    typer.echo(f"wrote {rows} records (images embedded) and the card to {dest}; check it with "
               f"`vlir validate {dest}`, upload with `{UPLOAD_HINT.format(dest=dest)}`")


def _export_sharegpt(out, dest, budget, instruction, images, split, progress) -> None:
    from vlir.formats.sharegpt import ShareGPTConfig, ShareGPTExportError, export_sharegpt

    if images not in ("copy", "reference"):
        fail(f"--images must be copy or reference, got {images!r}")
    cfg = ShareGPTConfig(budget=budget, instruction=instruction, images=images, splits=tuple(split or ()))
    try:
        summary = _with_bar(progress, "export", lambda tick: export_sharegpt(out, dest, cfg, tick))
    except ShareGPTExportError as exc:
        fail(str(exc))
    typer.echo(f"wrote {summary['records']} conversations to {dest / summary['data_file']} and "
               f"{dest / summary['dataset_info']} (LLaMA-Factory: dataset_dir={dest}, dataset=vlir); "
               f"{summary['skipped']} left out")


@app.command("import")
def import_(
    src: Path = typer.Argument(..., help="A folder of *.json / *.jsonl record files, or one such file."),
    out: Path = typer.Argument(..., help="vlir output folder to write (new or empty)."),
    fmt: str = typer.Option(..., "--format", help=FORMAT_HELP),
    min_pixels: Optional[int] = _sft_pixels("min", "were"),
    max_pixels: Optional[int] = _sft_pixels("max", "were"),
    crop_min_pixels: Optional[int] = typer.Option(None, "--crop-min-pixels", min=1, help="Budget of "
                                                  "vlir's crop the files are compared with (default: the "
                                                  "model family's)."),
    crop_max_pixels: Optional[int] = typer.Option(None, "--crop-max-pixels", min=1, help="Budget of "
                                                  "vlir's crop the files are compared with (default: the "
                                                  "model family's)."),
    base: Optional[Path] = typer.Option(None, "--base", help="Folder relative image/crop paths are "
                                        "resolved against (default: SRC, or its folder)."),
    image_root: Optional[Path] = typer.Option(None, "--image-root", help="Root the records reference "
                                              "their images under (default: the base)."),
    source: str = typer.Option("vlmr3", "--source", help="Source name of records that name none."),
    split: str = typer.Option("train", "--split", help="Split name of records that name none."),
    embed_images: bool = typer.Option(False, "--embed-images/--reference-images",
                                      help="Store the original image bytes in the shards."),
    crop_tolerance: float = typer.Option(2.0, "--crop-tolerance", min=0.0, help="Mean absolute "
                                         "pixel difference up to which a crop file matches vlir's crop."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
) -> None:
    """Read the authors' SFT records into validated vlir shards; unreadable records become rejects
    with reasons, and each crop file's difference from vlir's own crop is reported."""
    from vlir.corpus.manifest import ManifestError
    from vlir.formats.vlmr3 import AUTHORS_SFT_BUDGET
    from vlir.formats.vlmr3_import import ImportConfig, ImportInputError, import_records
    from vlir.models.registry import default_family

    _format(fmt)
    try:
        cfg = ImportConfig(budget=_budget(min_pixels, max_pixels, AUTHORS_SFT_BUDGET,
                                          "--min-pixels/--max-pixels") or AUTHORS_SFT_BUDGET,
                           crop_budget=_budget(crop_min_pixels, crop_max_pixels, default_family().crop(),
                                               "--crop-min-pixels/--crop-max-pixels"),
                           base=str(base) if base else None, image_root=str(image_root) if image_root else None,
                           source=source, split=split, embed_images=embed_images, crop_tolerance=crop_tolerance)
        manifest = _with_bar(progress, "import", lambda tick: import_records(src, out, cfg, tick))
    except (ValueError, ImportInputError, ManifestError) as exc:
        fail(str(exc))
    typer.echo(f"{'source/split':<28} {'accepted':>9} {'rejected':>9}  reasons")
    for key, s in manifest["splits"].items():
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(s["rejected_by_reason"].items(), key=lambda x: -x[1]))
        typer.echo(f"{key:<28} {s['accepted']:>9} {s['rejected']:>9}  {reasons}")
    typer.echo(f"wrote {out / 'manifest.json'}; check it with `vlir validate {out}`")

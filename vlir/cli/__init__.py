"""The ``vlir`` command line. Verbs live in sibling modules (``data``: the corpus; ``train``:
training, inference, evaluation) and register themselves on :data:`app`.

Conventions: ``--help`` on every verb; bad input exits 2 with a one-line reason and no traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

import typer
from typer.exceptions import Abort, Exit, TyperException

import vlir

app = typer.Typer(
    name="vlir",
    help="Build the VLIR corpus of region-grounded reasoning chains and train VLM-R3-style models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class BadInput(Exception):
    """Raised by verbs for user errors: printed as one line, exit code 2."""


def fail(message: str) -> NoReturn:
    raise BadInput(message)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vlir {vlir.__version__}")
        raise typer.Exit()


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def log_level(verbose: bool, quiet: bool, level: str | None) -> int:
    """The root logger's level from the root options: ``--log-level`` wins, then ``-v`` (DEBUG),
    then ``-q`` (WARNING: no INFO lines, no progress bars), else INFO."""
    if level is not None:
        if level.upper() not in LOG_LEVELS:
            fail(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {level!r}")
        return getattr(logging, level.upper())
    if verbose and quiet:
        fail("-v and -q contradict each other: pick one (or --log-level)")
    return logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at DEBUG level."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Log warnings and errors only; no progress bars."),
    level: str = typer.Option(None, "--log-level", help=f"Log level: {', '.join(LOG_LEVELS)} (overrides -v/-q)."),
) -> None:
    from vlir.progress import set_quiet

    chosen = log_level(verbose, quiet, level)
    if chosen > logging.INFO:
        set_quiet(True)  # no progress bars either (VLIR_QUIET=1 set by the user stays too)
    logging.basicConfig(level=chosen, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr, force=True)


VERB_MODULES = ("data", "build", "train", "sft", "grpo", "infer", "convert", "serving", "recipes")


def _register() -> None:
    """Import each verb module; a module registers its commands on import."""
    import importlib

    for name in VERB_MODULES:
        importlib.import_module(f"vlir.cli.{name}")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the app, turning usage errors and :class:`BadInput` into one line + exit 2."""
    from vlir.secrets import redact
    from vlir.sources.base import SourceError

    if argv is None:  # the vlir program itself (console script, python -m vlir), not a library call
        from vlir.process import mark_as_program

        mark_as_program()
    _register()
    try:
        result = app(args=argv, prog_name="vlir", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except TyperException as exc:  # click's usage errors (typer vendors click)
        if type(exc).__name__ == "NoArgsIsHelpError" and getattr(exc, "ctx", None) is not None:
            typer.echo(exc.ctx.get_help())
            return 0
        message = redact(" ".join(exc.format_message().split()))  # a key typed as a flag value
        typer.echo(f"vlir: error: {message}", err=True)
        return exc.exit_code
    except (BadInput, SourceError) as exc:
        typer.echo(f"vlir: error: {redact(' '.join(str(exc).split()))}", err=True)
        return 2
    except Exit as exc:
        return exc.exit_code
    except (Abort, KeyboardInterrupt):
        typer.echo("vlir: aborted", err=True)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""What this process is: the ``vlir`` program itself, or vlir called as a library inside someone
else's process (a notebook, a test, a pipeline).

Some start-up savings are only safe in the former: the build skips pyarrow's probe for pandas
(:func:`vlir.corpus.executors.local._first_conversion_without_pandas`), which leaves pyarrow
believing pandas absent for one test (is this object a pandas array?) until a pandas call re-imports
it: harmless in a process that never hands pyarrow a pandas object, a surprise in someone else's.
"""

from __future__ import annotations

_AS_PROGRAM = False


def mark_as_program() -> None:
    """Called by :func:`vlir.cli.main` when it runs as the program (no ``argv`` given)."""
    global _AS_PROGRAM
    _AS_PROGRAM = True


def is_program() -> bool:
    return _AS_PROGRAM

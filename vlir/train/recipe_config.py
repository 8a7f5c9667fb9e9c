"""What every trainer config shares on top of :class:`vlir.config.Config` (YAML recipes,
``key=value`` overrides, strict types, ``help()``): the module entry point (``--config`` plus
overrides, as ``python -m`` and ``deepspeed --module`` call it). ``SFTConfig`` and ``GRPOConfig``
subclass :class:`RecipeConfig` and add only their fields and checks. No torch here.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable, ClassVar, Sequence

from vlir.config import Config, ConfigError, option

PRECISIONS = ("auto", "bf16", "fp32")

_f = option  # the trainer configs' short name for a documented field

__all__ = ["PRECISIONS", "ConfigError", "RecipeConfig", "_f"]


class RecipeConfig(Config):
    """Mixin for a ``@dataclass`` trainer config loaded from a recipe. ``kind`` names it in messages."""

    kind: ClassVar[str] = "recipe"

    @classmethod
    def main(cls, run: Callable[[Any], Any], prog: str, doc: str | None,
             argv: Sequence[str] | None = None) -> int:
        """A trainer module's ``main``: ``--config`` + ``key=value`` overrides (the form both
        ``python -m`` and ``deepspeed --module`` call), then ``run(config)``. A bad recipe is one
        line on stderr and exit code 2."""
        parser = argparse.ArgumentParser(prog=prog, description=doc,
                                         formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("--config", help="recipe YAML (see recipes/)")
        parser.add_argument("--local_rank", "--local-rank", type=int, default=None,
                            help="set by the deepspeed launcher")
        parser.add_argument("overrides", nargs="*", help="key=value overrides of the recipe")
        args = parser.parse_args(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        try:
            cfg = cls.load(args.config, args.overrides)
        except (OSError, ValueError) as exc:
            print(f"{prog}: error: {exc}", file=sys.stderr)
            return 2
        run(cfg)
        return 0

"""Training on VLIR: the SFT and R-GRPO trainers, their configs, data and rewards. The model, its
tokens and the chat rendering they share with the rollout engine live in :mod:`vlir.models`.

Nothing heavy is imported here: ``import vlir.train`` must not pull in torch or transformers, so
the data verbs stay light. Import the submodules you need.

One thing happens on import, before any trainer can import DeepSpeed: :func:`extension_cache`
points ``TORCH_EXTENSIONS_DIR`` (where DeepSpeed caches the ops it compiles, ~40-60 s each on a
cold cache) at vlir's cache folder unless the user set it, so the build is paid once wherever vlir
runs (``make`` sets it to the checkout's ``.cache/``), not in an unnamed ``~/.cache`` corner.
"""

import os
from pathlib import Path


def cache_dir() -> Path:
    """vlir's cache folder: ``$VLIR_CACHE_DIR``, else ``$XDG_CACHE_HOME/vlir``, else ``~/.cache/vlir``."""
    if os.environ.get("VLIR_CACHE_DIR"):
        return Path(os.environ["VLIR_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vlir"


def extension_cache() -> str:
    """Set ``TORCH_EXTENSIONS_DIR`` to ``cache_dir()/torch_extensions`` unless it is set; returns it."""
    return os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(cache_dir() / "torch_extensions"))


extension_cache()

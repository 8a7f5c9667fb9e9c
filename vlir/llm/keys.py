"""The API key: read from the environment variable a config names, at the moment a client is
made, and never stored (not in configs, caches, manifests, scores or messages).

A key passed where the variable's *name* belongs (``--api-key-env sk-...``) is refused without
echoing it. An unset variable sends no key (``"EMPTY"``: a local vLLM/SGLang server wants none),
with one warning per variable per process, unless the caller requires one.
"""

from __future__ import annotations

import logging
import os

from vlir.secrets import looks_like_key, redact

log = logging.getLogger(__name__)

NO_KEY = "EMPTY"  # what the openai client sends when there is no key (it refuses None)
_warned: set[str] = set()


def check_env_name(env_name: str, what: str = "api_key_env") -> str:
    """``env_name`` if it is the name of an environment variable; a one-line ValueError otherwise
    (a key pasted in its place is not echoed)."""
    if looks_like_key(env_name):
        raise ValueError(f"{what} holds something shaped like an API key; give the NAME of the "
                         "environment variable that holds it (e.g. OPENAI_API_KEY)")
    if not env_name or not env_name.replace("_", "").isalnum():
        raise ValueError(f"{what} must be the NAME of an environment variable (e.g. OPENAI_API_KEY), "
                         f"got {redact(env_name)!r}")
    return env_name


def api_key(env_name: str, *, required_by: str | None = None) -> str:
    """The key in ``$env_name``. Unset: a one-line ValueError naming the variable when
    ``required_by`` says who needs it, else :data:`NO_KEY` and one warning per variable."""
    check_env_name(env_name)
    key = os.environ.get(env_name)
    if key:
        return key
    if required_by is not None:
        raise ValueError(f"{required_by} needs an API key in ${env_name} (it is not set)")
    if env_name not in _warned:
        _warned.add(env_name)
        log.warning("environment variable %s is not set: sending no API key (fine for a local "
                    "vLLM/SGLang server, refused by api.openai.com)", env_name)
    return NO_KEY

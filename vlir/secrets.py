"""What an API key looks like, so that nothing vlir writes (configs, manifests, warnings, logs,
error messages) ever echoes one.

vlir never holds a key in its config: the teacher reads it from the environment variable named by
``teacher.api_key_env``. A key can still arrive by mistake — pasted into a config file, or passed
as ``--api-key-env sk-...`` — so configs refuse key-shaped values (naming the field, never the
value) and :func:`redact` masks them in any text that is about to be shown or written.
"""

from __future__ import annotations

import os
import re

# Provider key prefixes (OpenAI sk-/sk-proj-, Anthropic sk-ant-, Hugging Face hf_, Google AIza,
# AWS AKIA, GitHub gh*_, Slack xox*-), a bearer header, and any long unbroken token mixing digits,
# lower and upper case (32+: no word, path, model name or lower-case hex digest looks like that).
_PATTERNS = (
    r"\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}",
    r"\bhf_[A-Za-z0-9]{16,}",
    r"\bAIza[0-9A-Za-z_\-]{20,}",
    r"\bAKIA[0-9A-Z]{12,}",
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",
    r"\bxox[abpr]-[A-Za-z0-9\-]{10,}",
    r"\b(?i:bearer)\s+[A-Za-z0-9._\-]{8,}",
    r"\b(?=[A-Za-z0-9_\-]*\d)(?=[A-Za-z0-9_\-]*[a-z])(?=[A-Za-z0-9_\-]*[A-Z])[A-Za-z0-9_\-]{32,}",
)
_KEY = re.compile("|".join(f"(?:{p})" for p in _PATTERNS))
MASK = "***"


def looks_like_key(value: object) -> bool:
    """Whether a string value holds something shaped like an API key or token."""
    return isinstance(value, str) and _KEY.search(value) is not None


def redact(text: str, env_names: tuple[str, ...] = ()) -> str:
    """``text`` with key-shaped tokens, and the values of the environment variables
    ``env_names`` (the real key, whatever its shape), replaced by ``***``."""
    for name in env_names:
        value = os.environ.get(name) if name and name.replace("_", "").isalnum() else None
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return _KEY.sub(MASK, text)

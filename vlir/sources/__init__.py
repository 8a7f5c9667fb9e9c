"""Source adapters for the official dataset layouts (see :mod:`vlir.sources.base`; the adapters by
name: :mod:`vlir.sources.registry`)."""

from vlir.sources.base import Source, SourceError, find_dir, find_file, load_json
from vlir.sources.registry import get_source, source_names

__all__ = ["Source", "SourceError", "find_dir", "find_file", "get_source", "load_json", "source_names"]

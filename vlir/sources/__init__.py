"""Source adapters for the official dataset layouts (see :mod:`vlir.sources.base`)."""

from vlir.sources.base import (Source, SourceError, find_dir, find_file, get_source, load_json,
                               register, source_names)

__all__ = ["Source", "SourceError", "find_dir", "find_file", "get_source", "load_json", "register",
           "source_names"]

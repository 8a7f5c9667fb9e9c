"""The source adapters by name. The registry sits above the adapters and lists them (an adapter
never imports it), so imports run one way: registry -> adapters -> base and the shared readers.
Adapters are imported on first use, so ``import vlir.sources`` stays cheap.
"""

from __future__ import annotations

from vlir.jsonstream import SourceError
from vlir.sources.base import Source


def _adapters() -> dict[str, type[Source]]:
    from vlir.sources.docvqa import DocVQA
    from vlir.sources.gqa import GQASource
    from vlir.sources.infographicsvqa import InfographicsVQA
    from vlir.sources.m3cot import M3CoTSource
    from vlir.sources.textvqa import TextVQA
    from vlir.sources.vsr import VSRSource
    from vlir.sources.zoom import ZoomSource

    return {cls.name: cls for cls in (DocVQA, GQASource, InfographicsVQA, M3CoTSource, TextVQA, VSRSource, ZoomSource)}


def source_names() -> list[str]:
    """Every adapter's name, sorted."""
    return sorted(_adapters())


def get_source(name: str) -> Source:
    """A new adapter for ``name``; an unknown name is a :class:`SourceError` listing the known ones."""
    adapters = _adapters()
    try:
        return adapters[name]()
    except KeyError:
        raise SourceError(None, f"unknown source {name!r}; choose from {', '.join(sorted(adapters))}") from None

"""One row per source: how its answers are scored, which threshold makes an answer right, how the
grounded annotator finds its looks, and whether ``vlir build --source all`` builds it.

Before this table the facts lived in four places (the eval's metric names, the metrics' dispatch,
the build's source list, the grounded annotator's text sources) and could drift. Read them here:

>>> metric_name("docvqa"), answer_threshold("textvqa"), "m3cot" in build_all_sources()
('anls', 'vqa_min', False)
>>> metric_name("gqa"), lenient_metric_name("gqa")
('gqa_accuracy', 'exact_match')

The metric names are functions of :mod:`vlir.metrics`: ``metric`` the official one the eval reports
(``vqa_accuracy``, ``anls``, ``gqa_accuracy``, ...), ``lenient`` the rule checks and rewards use
(``mc_letter`` is the option-letter match :func:`vlir.metrics.mc_match`); an answer threshold
names a :class:`vlir.checks.CheckConfig` field, whose default is :data:`ANSWER_THRESHOLDS`' (the
numbers' one home: :func:`vlir.metrics.is_correct` reads them too). A source not in the table
(``synth``) is scored by exact match. ``adapter`` says whether a :mod:`vlir.sources` adapter reads
the source (``vlir build``); a row without one is scored only (``chartqa``: records named so,
converted or imported elsewhere, score by ChartQA's relaxed accuracy).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceRule:
    """What vlir knows about one source's answers (see the module docstring)."""

    metric: str                      #: the official metric ``vlir eval`` reports (a vlir.metrics function)
    lenient: str                     #: the lenient rule checks, annotators and rewards use
    threshold: str | None            #: CheckConfig field a score must reach (None: a match, 1.0)
    grounding: str                   #: how the grounded annotator looks: program, text, relation, regions, object
    build_all: bool                  #: built by ``vlir build --source all``
    adapter: bool = True             #: a vlir.sources adapter reads it (False: scored only)


TABLE: dict[str, SourceRule] = {
    "textvqa": SourceRule("vqa_accuracy", "vqa_accuracy_lenient", "vqa_min", "text", True),
    "docvqa": SourceRule("anls", "anls_lenient", "anls_min", "text", True),
    "gqa": SourceRule("gqa_accuracy", "exact_match", None, "program", True),
    "infographicsvqa": SourceRule("anls", "anls_lenient", "anls_min", "text", True),
    "vsr": SourceRule("vsr_match", "vsr_match", None, "relation", True),
    "m3cot": SourceRule("mc_letter", "mc_letter", None, "regions", False),
    "chartqa": SourceRule("relaxed_accuracy", "relaxed_accuracy", None, "none", False, adapter=False),
    # the synthetic task of vlir.sources.zoom (what make train learns on): one colour name, one look
    "zoom": SourceRule("exact_match", "exact_match", None, "object", True),
}

#: the metric of a source that is not in the table
FALLBACK_METRIC = "exact_match"

#: the default of each answer threshold a row names (the CheckConfig field of that name, and
#: vlir.metrics.is_correct's default): VQA accuracy 0.3 = one of the ten annotators agrees; ANLS 0.5
ANSWER_THRESHOLDS = {"vqa_min": 0.3, "anls_min": 0.5}


def rule(source: str) -> SourceRule | None:
    return TABLE.get(source)


def metric_name(source: str) -> str:
    """The name of the source's official metric, the one ``vlir eval`` reports (a
    :mod:`vlir.metrics` function: the published tables' rule)."""
    row = TABLE.get(source)
    return row.metric if row else FALLBACK_METRIC


def lenient_metric_name(source: str) -> str:
    """The name of the lenient rule the build checks, the grounded annotator and the rewards use
    (:func:`vlir.metrics.score` without ``official``)."""
    row = TABLE.get(source)
    return row.lenient if row else FALLBACK_METRIC


def answer_threshold(source: str) -> str | None:
    """The :class:`vlir.checks.CheckConfig` field an answer's score must reach, or None when the
    answer must match a reference outright."""
    row = TABLE.get(source)
    return row.threshold if row else None


def build_all_sources() -> tuple[str, ...]:
    """The sources ``vlir build --source all`` builds, in build order."""
    return tuple(name for name, row in TABLE.items() if row.build_all)


def scored_only() -> tuple[str, ...]:
    """The sources no adapter reads: rows that only say how such records are scored."""
    return tuple(name for name, row in TABLE.items() if not row.adapter)


def sources_with(attribute: str, value: object) -> tuple[str, ...]:
    """The sources whose rule has ``attribute == value`` (``sources_with("grounding", "text")``)."""
    return tuple(name for name, row in TABLE.items() if getattr(row, attribute) == value)

"""Annotators: a sample and its image in, a reasoning chain out (see :mod:`vlir.annotate.base`).

``get_annotator("grounded")`` gives the offline, evidence-driven annotator; ``get_annotator(
"teacher", model=..., base_url=...)`` the chat-endpoint one. Both are imported lazily so that
importing this package stays cheap (the teacher pulls in an HTTP client).
"""

from __future__ import annotations

from typing import Any

from vlir.annotate.base import AnnotateInput, AnnotationError, Annotator

ANNOTATORS = ("grounded", "teacher")


def get_annotator(name: str, **config: Any) -> Annotator:
    """Build an annotator by name; ``config`` holds its settings (unknown keys are an error). The
    grounded annotator also takes ``checks`` (a CheckConfig or its mapping): its look limits, and
    ``model_budget`` (a :class:`~vlir.geometry.PixelBudget` on the build's family grid; default:
    the default family's view): the grid its looks are snapped to."""
    if name == "grounded":
        from vlir.annotate.grounded import GroundedAnnotator, GroundedConfig
        from vlir.checks import CheckConfig

        from vlir.models.registry import default_family

        checks = config.pop("checks", None)  # the look limits are the checks' thresholds
        if not isinstance(checks, CheckConfig):
            checks = CheckConfig.from_dict(checks)
        budget = config.pop("model_budget", None) or default_family().view()
        return GroundedAnnotator(GroundedConfig.from_dict(config), checks, budget)
    if name == "teacher":
        from vlir.annotate.teacher import TeacherAnnotator
        from vlir.annotate.teacher_config import TeacherConfig

        return TeacherAnnotator(TeacherConfig.from_dict(config))
    raise ValueError(f"unknown annotator {name!r}; choose from {', '.join(ANNOTATORS)}")


__all__ = ["ANNOTATORS", "AnnotateInput", "AnnotationError", "Annotator", "get_annotator"]

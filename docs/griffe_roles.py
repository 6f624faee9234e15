"""A griffe extension for the API reference: Sphinx roles in docstrings become Markdown.

flowkit's docstrings use Google style with Sphinx cross-reference roles
(``:class:`WorkflowDef```), which mkdocstrings would print as written. This
turns each role into inline code, linked to the object's entry when the API
page documents it (its ``::: flowkit.X`` lines), so links never dangle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import griffe

ROLE = re.compile(r":(class|func|meth|attr|mod|data|exc|obj):`~?\.?([^`]+)`")
API_PAGE = Path(__file__).parent / "api.md"


def _documented() -> set[str]:
    """The identifiers the API page renders (``::: flowkit.load`` gives ``flowkit.load``)."""
    lines = API_PAGE.read_text(encoding="utf-8").splitlines()
    return {line[4:].strip() for line in lines if line.startswith("::: ")}


class SphinxRoles(griffe.Extension):
    """Rewrite ``:role:`target``` in every docstring."""

    def __init__(self) -> None:
        self.documented = _documented()

    def _replace(self, match: re.Match[str]) -> str:
        role, target = match.groups()
        if role in ("meth", "attr"):  # a member: `resume` in Engine is not flowkit.resume
            return f"`{target}`"
        for candidate in (target, f"flowkit.{target}", f"flowkit.testing.{target}"):
            if candidate in self.documented:
                return f"[`{target}`][{candidate}]"
        return f"`{target}`"

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(self._replace, obj.docstring.value)

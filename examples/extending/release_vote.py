"""release_vote in Python: the twin of ``release_vote.yml``, with ``wf.quorum(...)``.

The ``quorum`` builder comes with the step type (``examples/extending/quorum.py``),
so importing that module is all it takes.
"""

from __future__ import annotations

import flowkit
from examples.extending import quorum  # noqa: F401  (registers the quorum step type)

__all__ = ["workflow"]

workflow = flowkit.Workflow("release_vote", inputs={"version": str})
workflow.quorum(
    "vote",
    prompt="Release $input.version?",
    voters=["ana", "ben", "cy"],
    needed=2,
    on_veto="held",
)
workflow.end("released", result={"version": "$input.version", "released": True, "votes": "$votes"})
workflow.end("held", result={"version": "$input.version", "released": False})

"""hello_world: the smallest useful flowkit workflow, written in Python.

The twin of ``hello_world.yml``: both compile to the same definition
(``tests/test_examples_python.py`` checks it).

Shows: a ``flowkit.Input`` with a default, the ``start`` step added for you,
an ``assign`` that interpolates a reference inside text
(``"Hello, $input.name!"``), and an ``end`` step whose result is built from
references. Each step continues with the step declared after it.

Services: none.

    flowkit export examples.hello_world:workflow
    flowkit.run(examples.hello_world.workflow, input={"name": "Ada"})
    -> output {"greeting": "Hello, Ada!", "name": "Ada"}
"""

from __future__ import annotations

import flowkit

__all__ = ["workflow"]

workflow = flowkit.Workflow(
    "hello_world",
    name="Hello World",
    description="Greets someone by name.",
    inputs={
        "name": flowkit.Input(
            type=str, required=False, default="World", description="Who to greet."
        ),
    },
)

workflow.assign("greet", set={"greeting": "Hello, $input.name!"})

workflow.end("done", result={"greeting": "$greeting", "name": "$input.name"})

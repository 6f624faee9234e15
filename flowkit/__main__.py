"""``python -m flowkit …`` works like the ``flowkit`` command."""

from .cli import main

main()

"""The web dashboard (SPEC §17, extra ``dashboard``): see and operate executions in a browser.

- :mod:`~flowkit.dashboard.app` — the Starlette application: pages, JSON API, live updates;
- :mod:`~flowkit.dashboard.actions` — resume, cancel, retry, signal, as the signed-in user;
- :mod:`~flowkit.dashboard.queries` — pages of executions and what an execution's page shows;
- :mod:`~flowkit.dashboard.layout` — the layered layout of a workflow graph, drawn as SVG;
- :mod:`~flowkit.dashboard.auth`, :mod:`~flowkit.dashboard.users` — sign-in and users.

It imports the engine and the layers below it; ``flowkit dashboard`` (in
:mod:`flowkit.cli`) serves it with uvicorn.
"""

from ..errors import ConfigError

try:
    import jinja2  # noqa: F401
    import starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ConfigError(
        f"the dashboard needs the dashboard extra ({exc}): pip install "
        "'flowkit-workflows[dashboard]' (or pip install -e '.[dashboard]' from the source tree)"
    ) from None

from .app import SECRET_ENV, create_app
from .users import USERS_ENV, Users, hash_password, verify_password

__all__ = ["SECRET_ENV", "USERS_ENV", "Users", "create_app", "hash_password", "verify_password"]

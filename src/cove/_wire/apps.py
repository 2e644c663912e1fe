"""Apps on the wire: the names an app's functions call each other by, and the variables that carry them.

An app's functions call each other by deployment name (``preprocess_image.map``
inside an endpoint of the same file). A script's ephemeral run may deploy a
function under a name of its own (``NAME--RUN``) when ``NAME`` is taken by other
code; the run's deployments then carry a map from each function's name to the
name it runs under (the deploy's ``app_names``, kept with each version), which
reaches their containers as ``COVE_APP_NAMES``, so a sibling call there goes to
the run's deployment and not to the one the run must leave alone.

``COVE_LOADING`` is set while a module is imported only to be served or
deployed (by the runner in a container, by ``cove deploy`` on a laptop): calls
made at import time then do not run (see ``cove.sdk._ephemeral``). Standard
library only: containers import this before the user's code.
"""

from __future__ import annotations

from ..exceptions import ConfigError
from .names import MAX_NAME_LENGTH, check_name

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

APP_NAMES_ENV = "COVE_APP_NAMES"
LOADING_ENV = "COVE_LOADING"
RUN_SEPARATOR = "--"
MAX_APP_NAMES = 1000


def run_name(name: str, run_id: str) -> str:
    """``name`` as an ephemeral run deploys it beside a deployment of that name: ``name--run``, at most 63 chars."""
    suffix = f"{RUN_SEPARATOR}{run_id}"
    return check_name("deployment", name[: MAX_NAME_LENGTH - len(suffix)].rstrip("-_") + suffix)


def check_app_names(value: object) -> dict[str, str]:
    """``{name: deployed name}`` of valid deployment names, sorted by name."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError("app_names must map deployment names to deployment names")
    if len(value) > MAX_APP_NAMES:
        raise ConfigError(f"app_names holds at most {MAX_APP_NAMES} names")
    for name, deployed in value.items():
        check_name("deployment", name)
        check_name("deployment", deployed)
    return dict(sorted(value.items()))


def app_names_env(names: Mapping[str, str] | None) -> dict[str, str]:
    """The container variables that carry ``names``: none when the app calls its functions by their own names."""
    if not names:
        return {}
    return {APP_NAMES_ENV: ",".join(f"{name}={deployed}" for name, deployed in sorted(names.items()))}


def parse_app_names(text: str | None) -> Mapping[str, str]:
    """``COVE_APP_NAMES`` read back; a malformed entry is skipped, never fatal."""
    found: dict[str, str] = {}
    for entry in (text or "").split(","):
        name, sep, deployed = entry.partition("=")
        if sep and name and deployed:
            found[name.strip()] = deployed.strip()
    return found

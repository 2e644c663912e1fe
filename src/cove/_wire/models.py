"""Model weights a deployment needs: ``"org/name@revision"`` references, checked the same everywhere.

The SDK turns ``models=[...]`` (strings or ``cove.Model`` objects) into these,
the gateway stores them with the deployment, and the worker mounts each one
from its weight cache. Standard library only: imported in every container.
"""

from __future__ import annotations

import re

from ..exceptions import ConfigError

_PART = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$")
_REVISION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$")
DEFAULT_REVISION = "main"
# Where a container finds the weights: a Hugging Face cache, read-only, with the hub switched to offline.
HF_HOME_INSIDE = "/cove/hf"
HF_HUB_CACHE_INSIDE = HF_HOME_INSIDE + "/hub"
MAX_MODELS = 16


class ModelRef:
    """One model repository at one revision (a branch, tag or 40-hex commit id)."""

    __slots__ = ("repo", "revision")

    def __init__(self, repo: str, revision: str = DEFAULT_REVISION) -> None:
        org, slash, name = (repo or "").partition("/") if isinstance(repo, str) else ("", "", "")
        if not slash or not _PART.match(org) or not _PART.match(name) or ".." in repo or "--" in repo:
            raise ConfigError(f"model {repo!r}: write ORG/NAME (letters, digits, '.', '_' and '-')")
        if not isinstance(revision, str) or not _REVISION.match(revision) or ".." in revision:
            raise ConfigError(f"model {repo!r}: invalid revision {revision!r}")
        self.repo = repo
        self.revision = revision

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        """``"org/name"`` or ``"org/name@revision"``."""
        if not isinstance(text, str):
            raise ConfigError(f"models must be 'org/name@revision' strings or cove.Model objects, not {text!r}")
        repo, _at, revision = text.partition("@")
        return cls(repo, revision or DEFAULT_REVISION)

    def __str__(self) -> str:
        return f"{self.repo}@{self.revision}"

    def __repr__(self) -> str:
        return f"ModelRef({self.repo!r}, {self.revision!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ModelRef) and (self.repo, self.revision) == (other.repo, other.revision)

    def __hash__(self) -> int:
        return hash((self.repo, self.revision))

    @property
    def cache_folder(self) -> str:
        """The repository's folder inside a Hugging Face cache (``models--org--name``)."""
        return "models--" + self.repo.replace("/", "--")


def check_models(models: object) -> tuple[str, ...]:
    """``["org/name@rev", Model(...), ...]`` -> sorted, unique ``"org/name@rev"`` strings."""
    if models is None:
        return ()
    if isinstance(models, str) or not isinstance(models, list | tuple):
        raise ConfigError("models must be a list of 'org/name@revision' strings or cove.Model objects")
    refs: dict[str, ModelRef] = {}
    for item in models:
        ref = item if isinstance(item, ModelRef) else ModelRef.parse(str(getattr(item, "ref", item)))
        if ref.repo in refs and refs[ref.repo] != ref:
            raise ConfigError(f"model {ref.repo} is listed at two revisions")
        refs[ref.repo] = ref
    if len(refs) > MAX_MODELS:
        raise ConfigError(f"a deployment may use at most {MAX_MODELS} models")
    return tuple(sorted(str(r) for r in refs.values()))


# Where gateways and workers find the reservoir's model API when it is not derived from the package index.
MODELS_URL_ENV = "COVE_MODELS_URL"


def reservoir_root(index_url: str | None) -> str | None:
    """The reservoir's root (where ``/api/models`` lives) behind a package index URL ``<root>/simple/``.

    ``http://host:8470/simple/`` gives ``http://host:8470``; a server's own
    ``http://host:8000/reservoir/simple/`` gives ``http://host:8000/reservoir``.
    A per-index URL (``<root>/<index>/simple/``) cannot be told apart from a
    mount prefix: set ``COVE_MODELS_URL`` there.
    """
    if not index_url:
        return None
    url = index_url.rstrip("/")
    return url[: -len("/simple")] if url.endswith("/simple") else url

"""``Model``: a model repository of the reservoir that a deployment's containers get, read-only and offline.

``@function(models=[Model("acme/tiny-llm", revision="v2")])`` (or the string
``"acme/tiny-llm@v2"``) makes the worker fetch that revision into its weight
cache once, mount it read-only into each container and point
``HF_HUB_CACHE`` at it with ``HF_HUB_OFFLINE=1``: ``from_pretrained``,
``snapshot_download`` and ``hf_hub_download`` then find the files by name
without any network. Imported in containers, so standard library only.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .._wire.models import DEFAULT_REVISION, HF_HUB_CACHE_INSIDE, ModelRef
from ..exceptions import ConfigError

_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class Model(ModelRef):
    """``Model("org/name", revision="main")``: one repository of the reservoir at one revision (or commit id)."""

    __slots__ = ()

    def __init__(self, repo: str, revision: str = DEFAULT_REVISION) -> None:
        super().__init__(repo, revision)

    @property
    def ref(self) -> str:
        """``"org/name@revision"``, as ``models=[...]`` takes it."""
        return str(self)

    def path(self) -> Path:
        """Inside a container: the folder holding the revision's files (a Hugging Face cache snapshot).

        Raises ``ConfigError`` outside a container of a deployment that lists the model.
        """
        cache = Path(os.environ.get("HF_HUB_CACHE") or HF_HUB_CACHE_INSIDE)
        folder = cache / self.cache_folder
        if _COMMIT.match(self.revision):
            commit = self.revision
        else:
            try:
                commit = (folder / "refs" / self.revision.replace("/", "--")).read_text().strip()
            except OSError:
                raise ConfigError(
                    f"model {self} is not mounted here: list it in the deployment's models=[...]"
                ) from None
        snapshot = folder / "snapshots" / commit
        if not snapshot.is_dir():
            raise ConfigError(f"model {self} is not mounted here: list it in the deployment's models=[...]")
        return snapshot

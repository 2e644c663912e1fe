"""Model weights of deployments, gateway side: which reservoir serves them, and a check at deploy time.

The reservoir is, in this order, ``COVE_MODELS_URL``, the root of the
package index image builds use (``<root>/simple/``), or the gateway's own
``/reservoir``. Workers get it with each start order (a worker's own
``COVE_MODELS_URL`` wins: it knows its network).

At deploy, each model of the config is looked up there: a repository or
revision the reservoir does not hold (or holds quarantined) is refused with
422 naming it; an unreachable reservoir is only a warning, and the container
reports the failure when it starts (in ``cove ps`` and the 503 body).
"""

from __future__ import annotations

import os
from urllib.parse import quote

import httpx

from .._wire.config import DeploymentConfig
from .._wire.models import MODELS_URL_ENV, ModelRef, reservoir_root
from ._errors import ApiError
from ._settings import GatewaySettings

CHECK_TIMEOUT = 5.0
RESERVOIR_PATH = "/reservoir"


def models_url(settings: GatewaySettings) -> str:
    """The reservoir workers fetch model weights from."""
    configured = os.environ.get(MODELS_URL_ENV) or reservoir_root(settings.index_url)
    return (configured or settings.public_url.rstrip("/") + RESERVOIR_PATH).rstrip("/")


async def check_models(settings: GatewaySettings, config: DeploymentConfig) -> list[str]:
    """422 for a model of ``config`` the reservoir does not hold; warnings when it cannot be asked."""
    return await check_model_refs(settings, config.models)


async def check_model_refs(settings: GatewaySettings, models: tuple[str, ...]) -> list[str]:
    """422 for a model (``org/name@revision``) the reservoir does not hold; warnings when it cannot be asked."""
    if not models:
        return []
    endpoint = models_url(settings)
    warnings: list[str] = []
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT) as client:
        for text in models:
            ref = ModelRef.parse(text)
            url = f"{endpoint}/api/models/{ref.repo}/revision/{quote(ref.revision, safe='')}"
            try:
                answer = await client.get(url)
            except httpx.HTTPError as exc:
                warnings.append(
                    f"the reservoir at {endpoint} cannot be reached to check model {ref} ({exc}); "
                    "a container that cannot fetch it fails to start and says why"
                )
                continue
            if answer.status_code in (403, 404):
                raise ApiError(422, f"model {ref}: the reservoir at {endpoint} has no usable one: {_reason(answer)}")
            if answer.status_code != 200:
                warnings.append(f"the reservoir at {endpoint} answered {answer.status_code} for model {ref}")
    return warnings


def _reason(answer: httpx.Response) -> str:
    code = answer.headers.get("x-error-code")
    try:
        body = answer.json()
        message = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        message = None
    return str(message or code or answer.text.strip()[:200] or answer.status_code)

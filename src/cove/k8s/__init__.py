"""Cove on Kubernetes: the worker pool controller that the leading gateway runs.

The Helm chart (``deploy/helm/cove``) writes the controller's configuration to a file named by
``COVE_K8S_CONFIG``; with it set, the gateway that holds the scheduler lease creates and deletes worker pods.
:mod:`._decide` holds every scaling decision as a pure function, :mod:`._pods` the worker pod it creates and
:mod:`._controller` the loop that talks to the API server (``pip install 'cove[kubernetes]'``).
"""

from ._config import CONFIG_ENV, ControllerConfig, PoolSpec, load_config
from ._decide import Action, ObservedPod, Waiting, decide
from ._metrics import PoolCollector
from ._run import start_if_configured

__all__ = [
    "CONFIG_ENV",
    "Action",
    "ControllerConfig",
    "ObservedPod",
    "PoolCollector",
    "PoolSpec",
    "Waiting",
    "decide",
    "load_config",
    "start_if_configured",
]

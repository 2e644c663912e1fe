"""Wire formats shared by the gateway, the workers, the CLI and the SDK.

Everything that crosses a process boundary is declared here once: the
deployment config with its per-kind defaults and ranges (``config``,
``defaults``, ``ranges``, ``policies``, ``fields``, ``gpus``, ``sizes``,
``schedule``), names (``names``), kinds (``kinds``) and where each answers
calls (``urls``), image specs (``image_spec``, ``requirements``), the worker
protocol (``worker``) and call payloads (``payload``, ``frames``). These modules use the standard
library only, because containers import them before the user's code; only
``api`` (the control API's response models, for the gateway and the CLI)
needs pydantic. This file imports none of them, so each costs only itself.
"""

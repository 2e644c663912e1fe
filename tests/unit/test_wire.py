"""``cove._wire``: what crosses a process boundary is declared once, in the standard library only."""

from __future__ import annotations

import ast
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import cove._wire
from cove import function, schedule, task_queue
from cove._wire import ranges
from cove._wire.config import DeploymentConfig
from cove._wire.defaults import KIND_DEFAULTS, KindDefaults, defaults_for, stored
from cove._wire.image_spec import FIELDS
from cove._wire.kinds import KINDS
from cove.exceptions import ConfigError
from cove.gateway._functions_api import call_deadline
from cove.scheduler._scheduler import stored_config
from cove.sdk._image import Image
from cove.store import Deployment

SRC = Path(cove._wire.__file__).resolve().parent.parent
# The one module of the package that may use a third-party library: the control API's pydantic
# response models, imported by the gateway and the CLI only.
_NOT_STDLIB_ONLY = {"api"}
_SCHEDULE = ("0 9 * * *", "UTC")


def _wire_modules() -> list[str]:
    return [f"cove._wire.{m.name}" for m in pkgutil.iter_modules(cove._wire.__path__) if m.name not in _NOT_STDLIB_ONLY]


def _extra_for(kind: str) -> dict[str, object]:
    return {"schedule": _SCHEDULE} if kind == "schedule" else {}


def test_the_contracts_import_only_the_standard_library() -> None:
    """Containers import these before the user's code: no third-party module, nothing else of Cove."""
    modules = _wire_modules()
    assert "cove._wire.config" in modules and "cove._wire.worker" in modules
    script = (
        "import sys; before = set(sys.modules)\n"
        "import importlib\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print('\\n'.join(sorted(set(sys.modules) - before)))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    cove_modules = {"cove", "cove._wire", "cove._wire.frozen", "cove.exceptions", *modules}
    foreign = [
        name for name in loaded if name not in cove_modules and name.split(".")[0] not in sys.stdlib_module_names
    ]
    assert foreign == []


def test_the_exceptions_import_only_the_standard_library() -> None:
    script = "import sys; before = set(sys.modules); import cove.exceptions; print(*sorted(set(sys.modules) - before))"
    loaded = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    assert [
        n for n in loaded if n not in ("cove", "cove.exceptions") and n.split(".")[0] not in sys.stdlib_module_names
    ] == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_kind_gets_the_same_defaults_however_its_config_is_made(kind: str) -> None:
    """The constructor, ``build()`` and ``from_dict()`` all read the one table of defaults."""
    extra = _extra_for(kind)
    direct = DeploymentConfig(kind=kind, **extra)  # type: ignore[arg-type]
    built = DeploymentConfig.build(kind, **extra)  # type: ignore[arg-type]
    stored_form = DeploymentConfig.from_dict({"kind": kind, **extra})
    assert direct == built == stored_form
    declared = defaults_for(kind)
    for name in ("cpu_millis", "memory_mib", "keep_warm_seconds", "timeout", "retries", "concurrent_requests"):
        assert getattr(direct, name) == getattr(declared, name), name
    assert direct.task_policy.max_retries == declared.retries
    assert (direct.autoscaler.min_containers, direct.autoscaler.max_containers) == (
        declared.min_containers,
        declared.max_containers,
    )


def test_the_decorators_apply_the_declared_defaults() -> None:
    made = {
        "function": function(name="f")(lambda: None),
        "task_queue": task_queue(name="q")(lambda: None),
        "schedule": schedule(*_SCHEDULE, name="s")(lambda: None),
    }
    for kind, stub in made.items():
        assert stub.config == DeploymentConfig(kind=kind, **_extra_for(kind)), kind  # type: ignore[arg-type]
    assert made["function"].config.retries == 3 and made["function"].config.timeout == 3600


def test_a_task_policy_stands_for_retries_not_given() -> None:
    from cove import TaskPolicy

    policy = TaskPolicy(max_retries=7)
    assert DeploymentConfig(kind="task_queue", task_policy=policy).retries == 7
    assert DeploymentConfig.build("task_queue", task_policy=policy).retries == 7


def test_an_explicit_null_is_still_refused() -> None:
    with pytest.raises(ConfigError, match="timeout must be a number"):
        DeploymentConfig.from_dict({"kind": "function", "timeout": None})


def test_the_table_covers_every_kind_within_its_ranges_and_is_immutable() -> None:
    assert set(KIND_DEFAULTS) == set(KINDS)
    bounds = {
        "cpu_millis": ranges.CPU_MILLIS,
        "memory_mib": ranges.MEMORY_MIB,
        "keep_warm_seconds": ranges.KEEP_WARM_SECONDS,
        "timeout": ranges.TIMEOUT,
        "retries": ranges.RETRIES,
        "concurrent_requests": ranges.CONCURRENT_REQUESTS,
        "workers": ranges.WORKERS,
        "max_pending_tasks": ranges.MAX_PENDING_TASKS,
        "min_containers": ranges.MIN_CONTAINERS,
        "max_containers": ranges.MAX_CONTAINERS,
        "tasks_per_container": ranges.TASKS_PER_CONTAINER,
        "buffer_containers": ranges.BUFFER_CONTAINERS,
        "scale_down_window": ranges.SCALE_DOWN_WINDOW,
        "retry_delay_seconds": ranges.RETRY_DELAY_SECONDS,
        "backoff": ranges.BACKOFF,
        "max_delay": ranges.MAX_DELAY,
    }
    assert set(bounds) | {"authorized"} == set(KindDefaults.__slots__)
    for kind, declared in KIND_DEFAULTS.items():
        for name, bound in bounds.items():
            bound.check(f"{kind} {name}", getattr(declared, name))
    with pytest.raises(TypeError):
        KIND_DEFAULTS["endpoint"] = KIND_DEFAULTS["function"]  # type: ignore[index]
    with pytest.raises(AttributeError):
        KIND_DEFAULTS["endpoint"].timeout = 1
    with pytest.raises(ConfigError, match="unknown kind"):
        defaults_for("lambda")


@pytest.mark.parametrize("kind", KINDS)
def test_the_gateway_and_scheduler_read_a_missing_setting_as_the_kind_declares(kind: str) -> None:
    declared = defaults_for(kind)
    row = Deployment(kind=kind, config=dict(_extra_for(kind)), name="x", version=1)
    assert stored(row.config, kind, "timeout") == declared.timeout
    assert stored(row.config, kind, "authorized") is declared.authorized
    assert stored({"timeout": 5.0}, kind, "timeout") == 5.0
    assert stored_config(row) == DeploymentConfig(kind=kind, **_extra_for(kind))  # type: ignore[arg-type]
    if kind in ("function", "task_queue", "schedule"):
        assert call_deadline(row) == declared.timeout * (1 + declared.retries) + 60


def _defined(name: str) -> list[str]:
    """Where ``name`` is assigned at module level or defined as a function, across ``src/cove``."""
    places = []
    for path in SRC.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            targets = [t.id for t in getattr(node, "targets", []) if isinstance(t, ast.Name)]
            if name in targets or (isinstance(node, ast.FunctionDef) and node.name == name):
                places.append(str(path.relative_to(SRC)))
    return places


def test_shared_declarations_exist_once() -> None:
    assert _defined("TASK_KINDS") == ["_wire/kinds.py"]
    assert _defined("KINDS") == ["_wire/kinds.py", "reservoir/indexes.py"]  # the reservoir's are index kinds
    assert _defined("check_object_name") == []
    assert _defined("check_name") == ["_wire/names.py", "reservoir/indexes.py"]  # the reservoir's: index names


def _imports(folder: str) -> set[str]:
    found: set[str] = set()
    for path in (SRC / folder).rglob("*.py"):
        package = ["cove", *path.relative_to(SRC).parent.parts]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                found.add(".".join([*base, node.module] if node.module else base))
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
    return found


def test_the_parts_meet_only_in_the_contracts() -> None:
    """The gateway and the builder use no SDK internals; the SDK uses nothing of the server side."""
    for folder in ("gateway", "images", "scheduler", "worker"):
        assert [m for m in _imports(folder) if m.startswith("cove.sdk")] == [], folder
    server_side = ("cove.scheduler", "cove.gateway", "cove.store", "cove.worker", "cove.images")
    assert [m for m in _imports("sdk") if m.startswith(server_side)] == []


def test_the_sdk_image_holds_the_fields_of_the_wire_spec() -> None:
    assert tuple(Image.__slots__) == FIELDS
    assert set(Image().spec()) == {"spec_version", *FIELDS} - {"python_env"}

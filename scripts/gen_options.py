"""Render ``docs/options.md``, the reference of every decorator option (``make docs``).

Nothing in the reference is written by hand: each option's type comes from
``ComputeOptions`` (what the decorators accept, ``cove/sdk/_decorators.py``),
its description from the field documentation of ``DeploymentConfig``
(``cove/_wire/config.py``; of ``ComputeOptions`` for what the SDK object
keeps), its default per kind from a config built for that kind (so from
``cove/_wire/defaults.py``) and its bounds from ``cove/_wire/ranges.py``. An
option of ``DeploymentConfig.build()`` without a type or a description stops
the rendering, so none goes undocumented.

``python scripts/gen_options.py`` writes the file; with ``--check`` it only
says whether the file is current, as ``tests/unit/test_options_doc.py`` does.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path
from typing import Any

from cove._wire import ranges
from cove._wire.config import DeploymentConfig
from cove._wire.kinds import DEPLOYABLE_KINDS
from cove._wire.policies import QueueDepthAutoscaler, TaskPolicy
from cove.sdk import _decorators

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "options.md"

# Options the config keeps under another name (in its own units).
_FIELD_OF = {"cpu": "cpu_millis", "memory": "memory_mib", "gpu_memory": "gpu_memory_mib"}
# Fields whose bounds ``ranges`` names otherwise than the field, upper-cased.
_RANGE_OF = {
    "TaskPolicy.max_retries": "RETRIES",
    "TaskPolicy.timeout": "TASK_TIMEOUT",
    "TaskPolicy.ttl": "TASK_TTL",
}
# Fields the decorators set themselves (or ``cove deploy`` records): no option sets them.
_NOT_OPTIONS = frozenset({"kind", "schedule", "parameters"})
_POLICIES: dict[str, type[QueueDepthAutoscaler | TaskPolicy]] = {
    "autoscaler": QueueDepthAutoscaler,
    "task_policy": TaskPolicy,
}
_SCHEDULE = ("0 * * * *", "UTC")  # a @schedule's config needs one; its defaults do not depend on it
_NONE = "—"

Fields = dict[str, tuple[str, str | None]]


class Undocumented(Exception):
    """An option or field without its type or its one-line description."""


def _fields(source: Path, class_name: str) -> Fields:
    """``name -> (annotation, description)`` of the class ``class_name`` in ``source``, in order.

    A field's description is the string right after its annotation (an
    attribute docstring, which editors show too). Python keeps no trace of it
    at run time, hence the source; ``ComputeOptions`` exists for type checkers
    only, which is another reason.
    """
    tree = ast.parse(source.read_text(encoding="utf-8"))
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == class_name)
    fields: Fields = {}
    for statement, following in zip(node.body, [*node.body[1:], None], strict=True):
        if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            doc = None
            if isinstance(following, ast.Expr) and isinstance(following.value, ast.Constant):
                doc = " ".join(str(following.value.value).split())
            fields[statement.target.id] = (ast.unparse(statement.annotation), doc)
    return fields


def _source_of(thing: Any) -> Path:
    return Path(inspect.getsourcefile(thing) or "")


def _described(fields: Fields, owner: str) -> dict[str, str]:
    """The description of every field, or ``Undocumented`` naming those without one."""
    missing = [name for name, (_, doc) in fields.items() if not doc]
    if missing:
        raise Undocumented(f"{owner}: no description for {', '.join(missing)}; add one under each field")
    return {name: doc for name, (_, doc) in fields.items() if doc}


def _configs() -> dict[str, DeploymentConfig]:
    """The config each kind gets with no option given: what its defaults are, wherever they are declared."""
    return {
        kind: DeploymentConfig.build(kind, schedule=_SCHEDULE if kind == "schedule" else None)  # type: ignore[arg-type]
        for kind in DEPLOYABLE_KINDS
    }


def _bounds(owner: str, field: str) -> ranges.Range | None:
    found = getattr(ranges, _RANGE_OF.get(f"{owner}.{field}", field.upper()), None)
    return found if isinstance(found, ranges.Range) else None


def _value(value: object, bounds: ranges.Range | None) -> str:
    """A default as the reference shows it: a number in the unit of its bounds, ``—`` for none."""
    if value is None or value == ():
        return _NONE
    if isinstance(value, bool):
        return f"`{value}`"
    if isinstance(value, int | float):
        if bounds is not None and bounds.sentinel is not None and value == -1:
            return bounds.sentinel
        return f"{value:g}"
    return f"`{value!r}`"


def _cell(text: str) -> str:
    """Markdown table cell: docstring markup (````x````) as code, and ``|`` kept from splitting the row."""
    return text.replace("``", "`").replace("|", "\\|")


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(_cell(cell) for cell in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), "|" + "---|" * len(header), *(_row(row) for row in rows)]


def _options() -> list[str]:
    """The table of the decorators' options."""
    declared = {
        **_fields(_source_of(_decorators), "ComputeOptions"),
        **_fields(_source_of(_decorators), "InputsOptions"),
    }
    config_docs = _described(_fields(_source_of(DeploymentConfig), "DeploymentConfig"), "DeploymentConfig")
    built = set(inspect.signature(DeploymentConfig.build).parameters) - _NOT_OPTIONS
    untyped = sorted(built - set(declared))
    if untyped:
        raise Undocumented(f"DeploymentConfig.build() takes {', '.join(untyped)}, which ComputeOptions lacks")
    configs = _configs()
    rows = []
    for option, (annotation, sdk_doc) in declared.items():
        field = _FIELD_OF.get(option, option)
        kept_by_config = option in built
        doc = config_docs.get(field) if kept_by_config else sdk_doc
        if not doc:
            raise Undocumented(f"option {option!r} has no description (ComputeOptions, or its DeploymentConfig field)")
        bounds = _bounds("DeploymentConfig", field) if kept_by_config else None
        if option in _POLICIES:
            defaults = ["below"] * len(configs)
        elif kept_by_config:
            defaults = [_value(getattr(config, field), bounds) for config in configs.values()]
        else:
            defaults = [_NONE] * len(configs)
        if annotation.startswith("Required["):
            annotation = annotation.removeprefix("Required[").removesuffix("]")
        rows.append([f"`{option}`", f"`{annotation}`", *defaults, bounds.describe() if bounds else _NONE, doc])
    return _table(["Option", "Type", *(f"`@{kind}`" for kind in configs), "Bounds", "What it does"], rows)


def _policy(option: str, cls: type[QueueDepthAutoscaler | TaskPolicy]) -> list[str]:
    """The table of one option's fields: ``QueueDepthAutoscaler`` or ``TaskPolicy``."""
    docs = _described(_fields(_source_of(cls), cls.__name__), cls.__name__)
    parameters = inspect.signature(cls.__init__).parameters
    configs = _configs()
    rows = []
    undeclared = sorted(set(cls.__slots__) - set(docs))
    if undeclared:
        raise Undocumented(f"{cls.__name__}: no annotated, described field for {', '.join(undeclared)}")
    for field in docs:
        bounds = _bounds(cls.__name__, field)
        given = parameters[field].default
        per_kind = [_value(getattr(getattr(config, option), field), bounds) for config in configs.values()]
        rows.append(
            [
                f"`{field}`",
                f"`{parameters[field].annotation}`",
                _value(given, bounds),
                *per_kind,
                bounds.describe() if bounds else _NONE,
                docs[field],
            ]
        )
    header = ["Field", "Type", f"`{cls.__name__}()`", *(f"`@{kind}`" for kind in configs), "Bounds", "What it does"]
    return _table(header, rows)


def render() -> str:
    """The whole of ``docs/options.md``."""
    lines = [
        "# Decorator options",
        "",
        "<!-- Generated by `make docs` (scripts/gen_options.py) from the field documentation in",
        "src/cove/_wire/config.py, src/cove/_wire/policies.py and src/cove/sdk/_decorators.py, the",
        "defaults of src/cove/_wire/defaults.py and the bounds of src/cove/_wire/ranges.py: edit those,",
        "not this file. tests/unit/test_options_doc.py fails while it is out of date. -->",
        "",
        "Every compute decorator takes these keyword options: `@endpoint(...)`, `@function(...)`,",
        '`@task_queue(...)` and `@schedule(when, timezone="UTC", ...)`, whose `when` is a cron expression',
        "(five fields, or six with seconds last) read in `timezone`. An option left out takes its kind's",
        "default, shown per kind below (`—`: none; numbers in the unit their bounds name); a value",
        "outside its bounds is refused, by a `ConfigError` when the function is decorated and by a 422",
        "from the gateway.",
        "",
        *_options(),
    ]
    for option, cls in _POLICIES.items():
        lines += [
            "",
            f"## `{option}={cls.__name__}(...)`",
            "",
            f"Built as `{cls.__name__}()`, it takes the defaults of that column; with `{option}` left out,",
            "each kind gets those of its own column.",
            "",
            *_policy(option, cls),
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not TARGET.is_file() or TARGET.read_text(encoding="utf-8") != text:
            print(f"{TARGET.relative_to(ROOT)} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

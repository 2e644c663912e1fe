"""``cove image list|rm|gc|packages|audit``: what images take on disk, what they hold, and what of it is flagged."""

from __future__ import annotations

import time
from typing import Any

import typer

from cove._wire.units import human_size

from ._output import JsonOption, client, console, emit, errors, table

image_app = typer.Typer(
    help="List, remove, garbage-collect and audit built images and their layers.", no_args_is_help=True
)


def _ago(stamp: float) -> str:
    seconds = max(0.0, time.time() - stamp)
    for unit, length in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= length:
            return f"{seconds // length:.0f}{unit} ago"
    return "now" if seconds < 5 else f"{seconds:.0f}s ago"


def _users(row: dict[str, Any]) -> str:
    names = [
        f"{d['name']} v{d['version']}" + ("" if d["state"] == "active" else f" ({d['state']})")
        for d in row["deployments"]
    ]
    if row["other_workspace_deployments"]:
        names.append(f"+{row['other_workspace_deployments']} elsewhere")
    return ", ".join(names)


@image_app.command("list")
def image_list(as_json: bool = JsonOption) -> None:
    """Stored images: size (environment + system layers), last use, and the deployments using them."""
    api = client(as_json)
    with errors(as_json):
        rows: list[dict[str, Any]] = api.request("GET", "/api/v1/images")
    emit(
        rows,
        as_json,
        lambda: table(
            ["IMAGE", "PYTHON", "SIZE", "LAYERS", "LAST USED", "IN USE", "DEPLOYMENTS"],
            [
                [
                    r["id"][:12],
                    r["python_version"],
                    human_size(r["size_bytes"]),
                    human_size(r["layer_bytes"]) if r["layers"] else "",
                    _ago(r["last_used"]),
                    "yes" if r["in_use"] else "",
                    _users(r),
                ]
                for r in rows
            ],
        ),
    )


def _full_id(api: Any, prefix: str) -> str:
    """Accept the short ids that ``cove image list`` shows."""
    if len(prefix) == 64:
        return prefix
    matches = [r["id"] for r in api.request("GET", "/api/v1/images") if r["id"].startswith(prefix)]
    if len(matches) != 1:
        raise ValueError(f"{prefix!r} matches {len(matches)} images; give more of the id")
    return str(matches[0])


@image_app.command("rm")
def image_rm(
    image_id: str = typer.Argument(..., help="Image id (or a unique prefix)."), as_json: bool = JsonOption
) -> None:
    """Remove an image's environment; refused while an active deployment or a container uses it."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("DELETE", f"/api/v1/images/{_full_id(api, image_id)}")
    emit(
        result,
        as_json,
        lambda: console.print(f"removed image {result['id'][:12]} ({human_size(result['freed_bytes'])})"),
    )


@image_app.command("gc")
def image_gc(as_json: bool = JsonOption) -> None:
    """Remove every image, system layer and old base that nothing uses, and say how much space that freed."""
    api = client(as_json)
    with errors(as_json):
        report = api.request("POST", "/api/v1/images/gc")
    emit(
        report,
        as_json,
        lambda: console.print(
            f"removed {len(report['images'])} image(s), {len(report['layers'])} system layer(s), "
            f"{len(report['bases'])} base(s); freed {human_size(report['freed_bytes'])}",
            highlight=False,
        ),
    )


@image_app.command("packages")
def image_packages(
    image_id: str = typer.Argument(..., help="Image id (or a unique prefix)."), as_json: bool = JsonOption
) -> None:
    """The Python distributions and Debian packages an image was built with (recorded at build time)."""
    api = client(as_json)
    with errors(as_json):
        result = api.request("GET", f"/api/v1/images/{_full_id(api, image_id)}/packages")
    rows = [
        ["python", p["name"], p["version"], p.get("license_expression") or p.get("license") or ""]
        for p in result["python"]
    ]
    debian = result.get("debian") or {}
    rows += [["debian", p["package"], p["version"], p["source"]] for p in debian.get("packages", [])]
    emit(result, as_json, lambda: table(["KIND", "NAME", "VERSION", "LICENSE / SOURCE"], rows))


@image_app.command("audit")
def image_audit(as_json: bool = JsonOption) -> None:
    """Active deployments whose images hold a flagged package: the same as ``cove reservoir audit --deployed``."""
    deployed_audit(as_json)


def deployed_audit(as_json: bool) -> None:
    """Active deployments whose images hold a package the reservoir's advisories or policy now flag.

    The server re-audits by itself whenever an import changes the advisories
    or the policy (or the deployments change), so this reads its report.
    Exits 1 when any deployment is flagged, so a schedule can alert on it.
    """
    api = client(as_json)
    with errors(as_json):
        report = api.request("GET", "/api/v1/reservoir/audit/deployed")

    def show() -> None:
        rows = [
            [
                image["image_id"][:12],
                ", ".join(f"{d['name']} v{d['version']}" for d in image["deployments"]),
                f"{finding['name']} {finding['version']}",
                ", ".join(finding["advisories"]),
                finding.get("severity") or "",
                "; ".join(finding["reasons"]),
            ]
            for image in report["flagged"]
            for finding in image["findings"]
        ]
        if rows:
            table(["IMAGE", "DEPLOYMENTS", "PACKAGE", "ADVISORIES", "SEVERITY", "WHY"], rows)
        console.print(
            f"{report['checked_images']} deployed image(s) checked against {report['advisories']} advisories: "
            f"{len(report['flagged'])} flagged, {len(report['unknown'])} without a package record",
            highlight=False,
        )

    emit(report, as_json, show)
    if report["flagged"]:
        raise typer.Exit(1)

"""A small ``helm`` command on helm-sdkpy (Helm 4 as a library), for the test cluster: no Helm binary ships in
a registry these machines reach, helm-sdkpy does (it needs Python >= 3.12; setup.sh makes its venv).

    helm.py lint CHART
    helm.py install|upgrade RELEASE CHART [-n NS] [-f values.json] [--set-json JSON] [--wait] [--timeout S]
    helm.py uninstall RELEASE [-n NS]
    helm.py status RELEASE [-n NS]      (prints the release as JSON, its rendered manifest included)

Needs KUBECONFIG. Exits 1 with Helm's message on failure (schema and template errors name the value).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import helm_sdkpy as helm


def _values(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for path in args.values or ():
        with open(path) as fh:
            values.update(json.load(fh))
    for text in args.set_json or ():
        values.update(json.loads(text))
    return values


async def _run(args: argparse.Namespace) -> Any:
    cfg = helm.Configuration(namespace=args.namespace, kubeconfig=os.environ.get("KUBECONFIG"))
    if args.action == "lint":
        return await helm.Lint(cfg).run(args.release)
    if args.action == "install":
        return await helm.Install(cfg).run(
            args.release, args.chart, values=_values(args), create_namespace=True, wait=args.wait, timeout=args.timeout
        )
    if args.action == "upgrade":
        return await helm.Upgrade(cfg).run(
            args.release, args.chart, values=_values(args), wait=args.wait, timeout=args.timeout
        )
    if args.action == "uninstall":
        return await helm.Uninstall(cfg).run(args.release, wait=args.wait, timeout=args.timeout)
    return await helm.Status(cfg).run(args.release)


def main() -> int:
    parser = argparse.ArgumentParser(prog="helm.py")
    parser.add_argument("action", choices=["lint", "install", "upgrade", "uninstall", "status"])
    parser.add_argument("release", help="the release (for lint: the chart)")
    parser.add_argument("chart", nargs="?", default="")
    parser.add_argument("-n", "--namespace", default="default")
    parser.add_argument("-f", "--values", action="append")
    parser.add_argument("--set-json", action="append")
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--timeout", type=int, default=300)
    args = parser.parse_args()
    try:
        result = asyncio.run(_run(args))
    except helm.HelmError as exc:
        print(f"helm {args.action}: {exc}", file=sys.stderr)
        return 1
    if args.action == "lint" and result.get("Errors"):
        print(json.dumps(result, indent=1), file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, default=str)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

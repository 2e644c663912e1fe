"""Which ``python_packages`` entries an image may name: PEP 508 requirements and direct URLs, nothing local.

An image is built on the server, so a local path (``./pkg``, ``/etc``, a
``file:`` URL) would name the *server's* files, and pip-style options
(``-e``, ``-r``, ``--index-url``) would change where or how the build reads
them. Both are refused, with the reason, by the SDK before anything is sent
and by the gateway for a spec that arrives.
"""

from __future__ import annotations

import re

from ..exceptions import ConfigError

_ARCHIVES = (".whl", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
_LOCAL_STARTS = (".", "/", "~", "\\")
# PEP 508 without the marker grammar (markers are checked by the installer); the SDK also runs in
# containers whose images need not have ``packaging``, and the gateway checks the same rules, so this
# does not import it.
_NAME = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_VERSION_ONE = r"(?:~=|===|==|!=|<=|>=|<|>)\s*[A-Za-z0-9_.*+!-]+"
_VERSIONS = rf"{_VERSION_ONE}(?:\s*,\s*{_VERSION_ONE})*"
_PEP508 = re.compile(
    rf"^(?P<name>{_NAME})\s*"
    rf"(?:\[\s*(?:{_NAME}(?:\s*,\s*{_NAME})*)?\s*\])?\s*"
    rf"(?:@\s*(?P<url>\S+)|\(\s*{_VERSIONS}\s*\)|{_VERSIONS})?\s*"
    r"(?:;(?P<marker>.*))?$"
)


def _refuse(requirement: str, why: str) -> ConfigError:
    return ConfigError(f"python package {requirement!r} is refused: {why}")


def _check_url(requirement: str, url: str) -> None:
    scheme, sep, _rest = url.partition("://")
    if url.lower().startswith("file:"):
        raise _refuse(requirement, "a file: URL names a path on the server; publish the package to an index")
    if not sep or not scheme or not scheme.replace("+", "").isalpha():
        raise _refuse(requirement, "after '@' a requirement needs a URL (scheme://...), not a local path")


def check_requirement(requirement: str) -> None:
    """Raise ``ConfigError`` naming ``requirement`` and why, unless it is a PEP 508 requirement or a URL."""
    text = requirement.strip()
    if "\n" in text or "\r" in text or "\0" in text:
        raise _refuse(requirement, "one requirement per entry, without line breaks")
    if text.startswith("-"):
        raise _refuse(requirement, "options (-e, -r, --index-url, ...) are not allowed, only requirements")
    if text.startswith(_LOCAL_STARTS) or (len(text) > 1 and text[1] == ":" and text[0].isalpha()):
        raise _refuse(requirement, "it names a local path, which would be read on the server")
    head = text.split(";", 1)[0].strip()
    if "://" in head.split("@", 1)[0] or text.lower().startswith("file:"):
        _check_url(requirement, head)
        return
    parsed = _PEP508.match(text)
    if parsed is None or (parsed["marker"] is not None and not parsed["marker"].strip()):
        raise _refuse(requirement, "it is not a PEP 508 requirement (name, extras, versions, markers) or a URL")
    if parsed["url"] is not None:
        _check_url(requirement, parsed["url"])
    elif parsed["name"].lower().endswith(_ARCHIVES):
        raise _refuse(requirement, "it names a local file, which would be read on the server")

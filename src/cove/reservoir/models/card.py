"""The license a model card declares, as an SPDX-style expression the site policy can judge.

A Hub model card (``README.md``) starts with YAML front matter; its
``license:`` is a Hub license id (``apache-2.0``, ``mit``, ``llama3``...), a
list of them, or ``other`` with ``license_name:``. Only those keys are read, by
a line parser (no YAML library): a card is untrusted input and the rest of the
metadata does not matter to the policy.
"""

from __future__ import annotations

import re

from .. import licenses

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$")
_KEY = re.compile(r"^([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*(.*)$")
MAX_CARD = 1024 * 1024


def front_matter(text: str) -> list[str]:
    """The lines between the opening ``---`` and the closing one; empty without front matter."""
    lines = text.splitlines()
    if not lines or lines[0].strip() != "---":
        return []
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            return lines[1:end]
    return []


def _scalar(value: str) -> str:
    value = value.split(" #", 1)[0].strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return value.strip()


def _values(lines: list[str], key: str) -> list[str]:
    """A top-level key's value: a scalar, a flow list ``[a, b]`` or a block list of ``- a`` lines."""
    for index, line in enumerate(lines):
        match = _KEY.match(line)
        if not match or match.group(1) != key:
            continue
        rest = match.group(2).strip()
        if rest.startswith("[") and rest.endswith("]"):
            return [_scalar(v) for v in rest[1:-1].split(",") if _scalar(v)]
        if rest:
            return [_scalar(rest)]
        items = []
        for follow in lines[index + 1 :]:
            stripped = follow.strip()
            if not stripped or stripped.startswith("#"):
                continue
            if not follow[:1].isspace() and not stripped.startswith("-"):
                break
            if stripped.startswith("- "):
                items.append(_scalar(stripped[2:]))
        return [i for i in items if i]
    return []


def _spdx(hub_id: str) -> str | None:
    mapped = licenses.detect(None, hub_id, []).expression
    if mapped:
        return mapped
    return hub_id if _ID.match(hub_id) else None


def card_license(text: str) -> str | None:
    """The card's license as an expression (several ids joined with ``AND``), or None when it names none."""
    lines = front_matter(text)
    ids = _values(lines, "license")
    if ids == ["other"]:
        names = _values(lines, "license_name")
        ids = [f"LicenseRef-{names[0]}"] if names and _ID.match(names[0]) else []
    found = [spdx for spdx in (_spdx(i) for i in ids) if spdx]
    if not found or len(found) != len(ids):
        return None
    return " AND ".join(found) if len(found) > 1 else found[0]

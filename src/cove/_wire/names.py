"""Names a user chooses and paths a container mounts, checked the same way wherever they arrive.

A deployment's name goes into URLs (``/endpoint/NAME``); secret, volume and
pool names become folder names and environment-variable suffixes. Keeping them
to one plain alphabet makes every one of those uses safe without quoting.
"""

from __future__ import annotations

from ..exceptions import ConfigError

_NAME_FIRST = "abcdefghijklmnopqrstuvwxyz0123456789"
_NAME_REST = frozenset(_NAME_FIRST + "-_")
MAX_NAME_LENGTH = 63
# Where a volume may not be mounted: the container's own layout and the system folders
# its read-only root shares with the host.
_RESERVED_MOUNTS = ("/cove", "/proc", "/sys", "/dev", "/tmp", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/run")


def check_name(what: str, name: object) -> str:
    """``name`` if it is 1-63 lowercase letters, digits, '-' or '_' starting alphanumeric; ``what`` names it."""
    if (
        not isinstance(name, str)
        or not name
        or len(name) > MAX_NAME_LENGTH
        or name[0] not in _NAME_FIRST
        or not set(name) <= _NAME_REST
    ):
        raise ConfigError(
            f"{what} name {name!r} must be 1-{MAX_NAME_LENGTH} lowercase letters, digits, '-' or '_', "
            "starting alphanumeric"
        )
    return name


def check_mount_path(path: object) -> str:
    """An absolute, normalised path outside the folders Cove or the base system owns."""
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path or len(path) > 255:
        raise ConfigError(f"mount_path {path!r} must be an absolute path")
    parts = [p for p in path.split("/") if p]
    if not parts or any(p in (".", "..") for p in parts):
        raise ConfigError(f"mount_path {path!r} must be a normalised path below /, without '.' or '..'")
    clean = "/" + "/".join(parts)
    for reserved in _RESERVED_MOUNTS:
        if clean == reserved or clean.startswith(reserved + "/"):
            raise ConfigError(f"mount_path {clean!r} is inside {reserved}, which Cove reserves")
    return clean

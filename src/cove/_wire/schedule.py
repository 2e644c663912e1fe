"""A ``@schedule``'s cron expression and time zone: their shape, and whether they can be used.

The shape (two strings, five or six fields) is checked wherever a config is
built, containers included. The full check needs ``croniter`` and the time
zone database, so it is imported only when called: by the SDK outside
containers and by the gateway on deploy.
"""

from __future__ import annotations

from ..exceptions import ConfigError


class BadSchedule(ConfigError):
    """A cron expression or time zone that cannot be used."""


def check_shape(value: object) -> tuple[str, str] | None:
    """``(cron expression, time zone)`` of the right shape, or None for no schedule."""
    if value is None:
        return None
    if not isinstance(value, tuple | list) or len(value) != 2 or not all(isinstance(v, str) for v in value):
        raise ConfigError("schedule must be [cron expression, time zone]")
    when, timezone = value
    if len(when.split()) not in (5, 6):
        raise ConfigError(f"cron expression {when!r} must have 5 fields (or 6, the last being seconds)")
    if not timezone:
        raise ConfigError("schedule time zone must not be empty")
    return (when, timezone)


def check_schedule(when: str, timezone: str) -> None:
    """Raise ``BadSchedule`` naming what is wrong with the cron expression ``when`` or ``timezone``."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import CroniterBadCronError, croniter

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(f"unknown time zone {timezone!r} (use an IANA name like 'Europe/Berlin')") from None
    fields = when.split()
    if len(fields) not in (5, 6):
        raise BadSchedule(f"cron expression {when!r} must have 5 fields (or 6, the last being seconds)")
    try:
        croniter(when, datetime.now(UTC))
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise BadSchedule(f"cron expression {when!r} is not valid: {exc}") from None

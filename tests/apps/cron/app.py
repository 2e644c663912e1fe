"""A schedule that fires every two seconds (six cron fields: seconds last)."""

import time

from cove import schedule


@schedule("* * * * * */2", timezone="Europe/Berlin")
def heartbeat() -> float:
    return time.time()

"""A function and a schedule, beside the guide's endpoint and task queue: one deployment of each kind."""

from cove import function, schedule


@function(name="guide-square")
def square(i: int) -> int:
    return i * i


@schedule("0 0 1 1 *", name="guide-yearly")  # once a year: it does not run while the tests do
def yearly() -> str:
    return "ran"

"""A class with a life cycle: @enter loads (slowly) once per container, @method serves, @exit says goodbye."""

import os
import time

import cove

ENTERED: list[float] = []


@cove.endpoint(keep_warm_seconds=2)
class Greeter:
    @cove.enter()
    def load(self) -> None:
        time.sleep(1.0)  # a model loading: the container is not ready until it is done
        ENTERED.append(time.time())
        self.greeting = "hello"

    @cove.method()
    def greet(self, name: str) -> dict[str, object]:
        return {"text": f"{self.greeting}, {name}", "enters": len(ENTERED), "pid": os.getpid()}

    @cove.exit()
    def goodbye(self) -> None:
        print(f"greeter {os.getpid()} exit hook ran", flush=True)


@cove.function()
class Squarer:
    @cove.enter()
    def setup(self) -> None:
        self.power = 2

    @cove.method()
    def square(self, x: int) -> int:
        return int(x**self.power)

"""Classes with constructor parameters: each set of values gets containers whose @enter saw those values."""

import os

import cove


@cove.function(keep_warm_seconds=30)
class Model:
    size: str = cove.parameter(default="small")
    scale: int = cove.parameter(default=1)

    @cove.enter()
    def load(self) -> None:
        self.loaded = f"{self.size}x{self.scale}"  # what a model load would read: the parameters are set

    @cove.method()
    def describe(self, x: int) -> dict[str, object]:
        return {"loaded": self.loaded, "x": x * self.scale, "container": os.environ["COVE_CONTAINER_ID"]}


@cove.endpoint(keep_warm_seconds=30)
class Salutation:
    greeting: str = cove.parameter()  # no default: every caller names it

    @cove.enter()
    def load(self) -> None:
        self.prefix = self.greeting.upper()

    @cove.method()
    def greet(self, name: str) -> dict[str, object]:
        return {"text": f"{self.prefix}, {name}", "container": os.environ["COVE_CONTAINER_ID"]}

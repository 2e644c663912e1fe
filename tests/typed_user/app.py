"""A user's module, written against Cove's public API as the README shows it.

``tests/unit/test_typing.py`` runs ``mypy --strict`` over it. A line whose comment
starts with ``E:`` must be reported with exactly the error codes listed after
it, a ``reveal_type`` line whose comment starts with ``T:`` must reveal the type
written after it, and no other line may be reported.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, reveal_type

import cove
from cove import (
    Endpoint,
    Function,
    FunctionCall,
    QueueDepthAutoscaler,
    Task,
    TaskPolicy,
    TaskQueue,
    endpoint,
    function,
    schedule,
    schema,
    task_queue,
)


@function(cpu=0.5)
def square(i: int) -> int:
    return i * i


@function
def add(x: int, y: int = 1) -> int:
    return x + y


@function(timeout=60)
async def fetch(url: str) -> bytes:
    return url.encode()


@endpoint(cpu=1, memory="1Gi", autoscaler=QueueDepthAutoscaler(max_containers=2, tasks_per_container=8))
def predict(x: list[float]) -> dict[str, float]:
    return {"mean": sum(x) / len(x)}


@task_queue(
    task_policy=TaskPolicy(max_retries=5, retry_delay_seconds=1, backoff=2.0, retry_for=[ConnectionError], ttl=3600),
    callback_url="https://hooks.example.com/done",
)
def ingest(url: str) -> dict[str, str]:
    return {"url": url}


@schedule("*/5 * * * *", timezone="Europe/Berlin")
def refresh() -> None:
    pass


@function
def countdown(n: int) -> Iterator[int]:
    yield from range(n, 0, -1)


@function
async def letters(word: str) -> AsyncIterator[str]:
    for letter in word:
        yield letter


class Prompt(schema.Schema):
    text = schema.String(max_length=200)


@endpoint(inputs=Prompt)
def generate(prompt: Prompt) -> str:
    return str(prompt.text)


def calls_that_fit() -> None:
    reveal_type(square.remote(7))  # T: int
    reveal_type(square.remote(i=8))  # T: int
    reveal_type(square(3))  # T: int
    reveal_type(square.local(3))  # T: int
    reveal_type(square.spawn(12))  # T: cove.sdk._calls.FunctionCall[int]
    reveal_type(square.spawn(12).get(timeout=60))  # T: int
    reveal_type(square.map(range(10)))  # T: typing.Iterator[int]
    reveal_type(add.map(range(10), [1, 2]))  # T: typing.Iterator[int]
    reveal_type(add.map(range(10)))  # T: typing.Iterator[int]
    reveal_type(add.starmap([(1, 2), (3, 4)]))  # T: typing.Iterator[int]
    reveal_type(square.map(range(3), return_exceptions=True))  # T: typing.Iterator[int | Exception]
    reveal_type(add.map(range(3), kwargs={"y": 2}))  # T: typing.Iterator[int]
    reveal_type(square.with_options(idempotency_key="k").spawn(1))  # T: cove.sdk._calls.FunctionCall[int]
    reveal_type(fetch.remote("https://example.com"))  # T: bytes
    pending = fetch("https://example.com")  # calling here keeps the ``async def``: a coroutine
    reveal_type(pending).close()  # T: typing.Coroutine[Any, Any, bytes]
    reveal_type(predict.remote(x=[1.0, 2.0]))  # T: dict[str, float]
    reveal_type(predict.remote([1.0]))  # T: dict[str, float]
    reveal_type(ingest.put("s3://bucket/file"))  # T: cove.sdk._calls.Task[dict[str, str]]
    reveal_type(ingest.put("s3://bucket/file").result(timeout=60))  # T: dict[str, str]
    reveal_type(ingest.with_options(idempotency_key="k").put("s3://f"))  # T: cove.sdk._calls.Task[dict[str, str]]
    reveal_type(generate.remote(text="hi"))  # T: str
    reveal_type(countdown.remote_gen(3))  # T: typing.Iterator[int]
    reveal_type(letters.remote_gen(word="abc"))  # T: typing.Iterator[str]
    reveal_type(FunctionCall.from_id("fc-1"))  # T: cove.sdk._calls.FunctionCall[Any]
    reveal_type(Task.from_id("fc-1"))  # T: cove.sdk._calls.Task[Any]
    refresh.remote()
    typed: Function[[int], int] = square
    queue: TaskQueue[[str], dict[str, str]] = ingest
    served: Endpoint[[list[float]], dict[str, float]] = predict
    outputs: Iterator[int] = typed.map([1, 2])
    print(queue, served, outputs)


async def async_calls(words: list[str]) -> None:
    reveal_type(await square.remote.aio(7))  # T: int
    reveal_type(await fetch.remote.aio("https://example.com"))  # T: bytes
    reveal_type(await fetch("https://example.com"))  # T: bytes
    await square.remote.aio("7")  # E: arg-type
    await fetch.remote.aio(words)  # E: arg-type


def calls_that_do_not_fit(words: list[str], anything: Any) -> None:
    square.remote("7")  # E: arg-type
    square.remote(7, 8)  # E: call-arg
    square.remote(j=7)  # E: call-arg
    square.spawn("12")  # E: arg-type
    square.spawn(12, 13)  # E: call-arg
    square.map(words)  # E: arg-type
    add.map(range(3), words)  # E: arg-type
    add.starmap([("1", 2)])  # E: list-item
    square("3")  # E: arg-type
    square(3, 4)  # E: call-arg
    square.local("3")  # E: arg-type
    predict.remote(x="1.0")  # E: arg-type
    predict.remote([1.0], [2.0])  # E: call-arg
    ingest.put(3)  # E: arg-type
    ingest.put("a", "b")  # E: call-arg
    ingest.with_options(idempotency_key="k").put(3)  # E: arg-type
    square.with_options(idempotency_key="k").put(1)  # E: attr-defined
    square.put(1)  # E: attr-defined
    refresh.remote(1)  # E: call-arg
    countdown.remote_gen("3")  # E: call-overload
    total: str = square.remote(2)  # E: assignment
    print(total, anything)


@function(cpus=2)  # E: call-overload untyped-decorator
def misspelt_option() -> None:
    pass


@task_queue(memory=[512])  # E: call-overload untyped-decorator
def wrong_option_type() -> None:
    pass


# An app's decorators are the module-level ones, types and all.
vision = cove.App("vision")


@vision.function(cpu=2)
def preprocess(url: str) -> list[float]:
    return [float(len(url))]


@vision.endpoint
def classify(urls: list[str]) -> int:
    return len(list(preprocess.map(urls)))


def use_the_app() -> None:
    reveal_type(preprocess.remote("u"))  # T: list[float]
    reveal_type(classify.remote(["u"]))  # T: int
    preprocess.remote(3)  # E: arg-type
    vision.function(cpus=2)  # E: call-overload

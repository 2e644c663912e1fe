"""Constructor parameters of classes: checked at decoration and at ``Model(...)``, before anything is sent."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import cove
from cove._wire.config import DeploymentConfig
from cove._wire.parameters import (
    ENVELOPE_KEY,
    ParameterError,
    check_declared,
    dumps,
    label,
    of_container,
    of_payload,
    pool_key,
    resolve,
)
from cove._wire.payload import unwrap
from cove.exceptions import ConfigError, CoveError
from cove.sdk import client as sdk_client
from cove.sdk._calls import dumps_arguments


@cove.function()
class ModelClass:
    size: str = cove.parameter(default="small")
    steps: int = cove.parameter(default=10)
    temperature: float = cove.parameter(default=0.5)
    fast: bool = cove.parameter(default=False)

    @cove.enter()  # type: ignore[untyped-decorator]  # cove.enter() is typed as returning Any
    def load(self) -> None:
        self.loaded = f"{self.size}/{self.steps}"

    @cove.method()  # type: ignore[untyped-decorator]
    def predict(self, x: int) -> int:
        return x


# mypy keeps a decorated class's own type (it ignores what a class decorator returns): use the handle as Any.
Model: Any = ModelClass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every check here happens before a call is sent: reaching for the gateway fails the test."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a call went out")

    monkeypatch.setattr(sdk_client.Client, "shared", classmethod(refuse))


def test_the_declaration_reaches_each_method_s_config() -> None:
    config = Model.predict.config
    assert config.class_parameters == (
        ("size", "str", False, "small"),
        ("steps", "int", False, 10),
        ("temperature", "float", False, 0.5),
        ("fast", "bool", False, False),
    )
    assert DeploymentConfig.from_dict(config.to_dict()) == config  # as stored and read back


def test_a_handle_carries_checked_values_with_defaults_filled_in() -> None:
    bound = Model(size="large", temperature=1)
    assert bound.predict.class_parameters == {"fast": False, "size": "large", "steps": 10, "temperature": 1.0}
    assert Model.predict.class_parameters == {}  # the class itself: the gateway fills in the defaults
    assert Model().predict.class_parameters == {"fast": False, "size": "small", "steps": 10, "temperature": 0.5}


@pytest.mark.parametrize(
    ("given", "match"),
    [
        ({"colour": "red"}, "no parameter 'colour'"),
        ({"size": 3}, "'size' must be a str, not int"),
        ({"steps": "10"}, "'steps' must be a int"),
        ({"steps": True}, "'steps' must be a int, not bool"),
        ({"fast": 1}, "'fast' must be a bool"),
        ({"temperature": float("nan")}, "finite"),
    ],
)
def test_bad_values_are_refused_at_the_call_to_the_class(given: dict[str, Any], match: str) -> None:
    with pytest.raises(ParameterError, match=match) as caught:
        Model(**given)
    assert isinstance(caught.value, ConfigError) and isinstance(caught.value, TypeError)
    assert isinstance(caught.value, CoveError)


def test_positional_values_and_missing_required_ones_are_refused() -> None:
    with pytest.raises(ConfigError, match="by name"):
        Model("large")

    @cove.function()
    class Needs:
        name: str = cove.parameter()

        @cove.method()  # type: ignore[untyped-decorator]
        def run(self) -> None: ...

    needs: Any = Needs
    with pytest.raises(ParameterError, match="needs a value for parameter 'name'"):
        needs()
    assert needs(name="x").run.class_parameters == {"name": "x"}


def test_only_str_int_float_and_bool_are_parameter_types() -> None:
    with pytest.raises(ConfigError, match="a str, int, float or bool"):

        @cove.function()
        class Listed:
            items: list[str] = cove.parameter(default=[])

            @cove.method()  # type: ignore[untyped-decorator]
            def run(self) -> None: ...

    with pytest.raises(ConfigError, match="needs a type"):

        @cove.function()
        class Untyped:
            size = cove.parameter(default="small")

            @cove.method()  # type: ignore[untyped-decorator]
            def run(self) -> None: ...

    with pytest.raises(ParameterError, match="'size' must be a str"):

        @cove.function()
        class BadDefault:
            size: str = cove.parameter(default=3)

            @cove.method()  # type: ignore[untyped-decorator]
            def run(self) -> None: ...


def test_a_class_without_parameters_takes_none() -> None:
    @cove.function()
    class Plain:
        @cove.method()  # type: ignore[untyped-decorator]
        def run(self) -> None: ...

    plain: Any = Plain
    assert plain() is plain
    with pytest.raises(ParameterError, match="it takes none"):
        plain(size="large")


def test_the_values_travel_in_the_envelope_and_pick_one_pool_per_set() -> None:
    declared = Model.predict.config.class_parameters
    values = Model(size="large").predict.class_parameters
    payload = dumps_arguments((1,), {}, parameters=values)
    header, body = unwrap(payload)
    assert header == {ENVELOPE_KEY: values} and pickle.loads(body) == ((1,), {})
    assert of_payload(declared, payload, "model") == values
    assert of_payload(declared, dumps_arguments((1,), {}), "model") == resolve(declared, {}, "model")
    assert dumps_arguments((1,), {}, parameters={}) == dumps_arguments((1,), {})  # nothing to carry: a bare pickle
    assert pool_key("dep1", {}) == "dep1"
    assert pool_key("dep1", values) == pool_key("dep1", dict(reversed(values.items())))
    assert pool_key("dep1", values) != pool_key("dep1", resolve(declared, {}, "model"))
    assert dumps(values) == '{"fast":false,"size":"large","steps":10,"temperature":0.5}'
    assert label({"size": "large", "n": 2}) == 'n=2, size="large"'


def test_a_container_makes_its_instance_with_its_values() -> None:
    made = Model.instance(of_container({"COVE_PARAMETERS": '{"size": "large", "steps": 3}'}))
    assert (made.size, made.steps, made.fast, made.loaded) == ("large", 3, False, "large/3")
    assert Model.instance().loaded == "small/10"


def test_stored_declarations_are_checked() -> None:
    with pytest.raises(ConfigError):
        check_declared([["size", "list", False, []]])
    with pytest.raises(ConfigError):
        check_declared([["size", "str", False, 3]])
    with pytest.raises(ConfigError):
        check_declared("nonsense")

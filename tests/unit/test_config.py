"""The typed config: parsing of user values and the documented defaults."""

import pytest

from cove import ConfigError, Image, QueueDepthAutoscaler, endpoint
from cove._wire.config import DeploymentConfig
from cove._wire.sizes import parse_cpu, parse_memory


@pytest.mark.parametrize(("value", "millis"), [(1, 1000), (0.25, 250), ("500m", 500), ("2", 2000), ("1.5", 1500)])
def test_cpu(value: object, millis: int) -> None:
    assert parse_cpu(value) == millis  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, -1, "abc", "5x", True, float("nan"), None])
def test_bad_cpu(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_cpu(value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "mib"), [(512, 512), ("512Mi", 512), ("2Gi", 2048), ("1GB", 1024), ("1.5Gi", 1536)])
def test_memory(value: object, mib: int) -> None:
    assert parse_memory(value) == mib  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [0, "lots", "10Ki", "-1Gi", False])
def test_bad_memory(value: object) -> None:
    with pytest.raises(ConfigError):
        parse_memory(value)  # type: ignore[arg-type]


def test_defaults_follow_the_api_document() -> None:
    ep = DeploymentConfig.build("endpoint")
    assert (ep.cpu_millis, ep.memory_mib, ep.keep_warm_seconds, ep.timeout, ep.retries) == (1000, 512, 180, 180, 0)
    assert ep.autoscaler == QueueDepthAutoscaler(min_containers=0, max_containers=4, tasks_per_container=1)
    fn = DeploymentConfig.build("function")
    assert (fn.cpu_millis, fn.timeout, fn.retries) == (250, 3600, 3)
    assert DeploymentConfig.build("task_queue").keep_warm_seconds == 10


def test_config_round_trips_and_rejects_bad_input() -> None:
    config = DeploymentConfig.build(
        "endpoint", cpu="250m", memory="1Gi", env={"A": "1"}, autoscaler=QueueDepthAutoscaler(1, 3, 2)
    )
    assert DeploymentConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown config fields: gpus"):
        DeploymentConfig.from_dict({"gpus": 1})
    with pytest.raises(ConfigError, match="cpu_millis must be an integer"):
        DeploymentConfig.from_dict({"cpu_millis": "lots"})
    with pytest.raises(ConfigError, match="min_containers"):
        QueueDepthAutoscaler(min_containers=5, max_containers=2)
    with pytest.raises(ConfigError, match="environment variable name"):
        DeploymentConfig.build("endpoint", env={"1BAD": "x"})


def test_decorator_does_no_work_and_validates_names() -> None:
    @endpoint(cpu=2)
    def predict(x: int) -> int:
        return x + 1

    assert predict.name == "predict"
    assert predict.config.cpu_millis == 2000
    assert predict.local(1) == 2
    with pytest.raises(ConfigError, match="name"):
        endpoint(name="Bad Name!")(lambda: None)


def test_image_id_is_a_hash_of_the_spec() -> None:
    a = Image(python_packages=["numpy"], python_version="python3.11")
    b = Image(python_version="3.11").add_python_packages("numpy")
    assert a.id == b.id
    assert a.python_version == "3.11"
    assert Image(python_packages=["numpy"]).id != a.id
    assert a.with_envs(X="1").id != a.id
    assert a.with_envs(X="1").env_vars == (("X", "1"),)
    assert Image().id == Image().id
    with pytest.raises(ConfigError):
        Image(python_version="2.7.1")


def test_image_spec_validation() -> None:
    from cove._wire.image_spec import validate_spec

    assert validate_spec(Image(python_packages=["six"]).spec()) == Image(python_packages=["six"]).spec()
    with pytest.raises(ConfigError, match="unknown image spec fields"):
        validate_spec({"evil": 1})
    with pytest.raises(ConfigError, match="must be a list of strings"):
        validate_spec({"python_packages": "numpy"})
    with pytest.raises(ConfigError, match="are not allowed, only requirements"):
        validate_spec({"python_packages": ["--index-url=http://elsewhere"]})


def test_decorator_options_mirror_the_config_builder() -> None:
    """``ComputeOptions`` (for users' type checkers) must list exactly what ``DeploymentConfig.build`` takes."""
    import ast
    import inspect
    from pathlib import Path

    import cove.sdk._decorators as decorators

    tree = ast.parse(Path(decorators.__file__).read_text())
    typed = next(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef) and n.name == "ComputeOptions")
    names = {n.target.id for n in typed.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    built = set(inspect.signature(DeploymentConfig.build).parameters) - {"kind", "schedule", "inputs"}
    assert names - decorators._STUB_OPTIONS == built


def test_unknown_decorator_option_is_named() -> None:
    with pytest.raises(ConfigError, match="unexpected keyword argument 'gpus'"):
        endpoint(gpus=2)(lambda: None)  # type: ignore[call-overload]

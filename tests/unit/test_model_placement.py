"""Model weights in user code and in placement: ``models=[...]`` checked at decoration and on the wire,
workers whose weight cache holds them preferred when several fit, heartbeat reports typed and bounded."""

from __future__ import annotations

import pytest

import cove
from cove._wire.config import DeploymentConfig
from cove._wire.worker import ContainerSpec, WeightsReport
from cove.exceptions import ConfigError
from cove.scheduler._placement import GpuRoom, Placement, Request, WorkerRoom, choose
from cove.scheduler._scheduler import request_for

H100 = "NVIDIA H100 80GB HBM3"


def test_models_option_accepts_strings_and_model_objects() -> None:
    @cove.function(models=[cove.Model("acme/tiny-llm", revision="v2"), "acme/embed"])
    def f() -> None: ...

    assert f.config.models == ("acme/embed@main", "acme/tiny-llm@v2")
    assert DeploymentConfig.from_dict(f.config.to_dict()).models == f.config.models
    assert request_for(f.config).models == f.config.models
    assert cove.Model("acme/x").ref == "acme/x@main"


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (["no-slash"], "write ORG/NAME"),
        (["acme/bad name"], "write ORG/NAME"),
        (["acme/x@bad rev"], "invalid revision"),
        (["acme/x@v1", "acme/x@v2"], "two revisions"),
        ("acme/x", "must be a list"),
        ([f"acme/m{i}" for i in range(17)], "at most 16"),
    ],
)
def test_bad_models_name_what_is_wrong(models: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DeploymentConfig.build("function", models=models)
    with pytest.raises(ConfigError, match=message):
        DeploymentConfig.from_dict({"kind": "function", "models": models})


def test_a_worker_holding_the_models_is_preferred_over_a_tighter_fit() -> None:
    request = Request(1000, 512, models=("acme/tiny@main",))
    tight = WorkerRoom("tight", 1000, 512)  # best fit without weights: nothing left over
    roomy = WorkerRoom("roomy", 8000, 8192, models=frozenset({"acme/tiny@main"}))
    placed = choose([tight, roomy], request)
    assert isinstance(placed, Placement) and placed.worker_id == "roomy"
    assert "holds 1 of the 1 model(s)" in placed.reason
    # Without models (or when neither holds them) best fit decides as before.
    plain = choose([tight, roomy], Request(1000, 512))
    assert isinstance(plain, Placement) and plain.worker_id == "tight"
    other = choose([tight, roomy], Request(1000, 512, models=("acme/other@main",)))
    assert isinstance(other, Placement) and other.worker_id == "tight"


def test_more_of_the_models_wins_and_fit_still_filters() -> None:
    request = Request(1000, 512, models=("a/one@main", "a/two@main"))
    one = WorkerRoom("one", 8000, 8192, models=frozenset({"a/one@main"}))
    both = WorkerRoom("both", 8000, 8192, models=frozenset({"a/one@main", "a/two@main"}))
    full = WorkerRoom("full", 500, 8192, models=frozenset({"a/one@main", "a/two@main"}))  # holds them, no cpu
    placed = choose([one, full, both], request)
    assert isinstance(placed, Placement) and placed.worker_id == "both"
    assert isinstance(choose([one, full], request), Placement)
    assert choose([one, full], request).worker_id == "one"  # type: ignore[union-attr]


def test_gpu_placement_prefers_the_worker_with_the_weights() -> None:
    def gpu_worker(wid: str, free: int, models: frozenset[str] = frozenset()) -> WorkerRoom:
        gpus = tuple(GpuRoom(i, f"GPU-{wid}-{i}", H100, 80 * 1024) for i in range(free))
        return WorkerRoom(wid, 16000, 65536, None, gpus, models)

    request = Request(1000, 512, gpu=("H100",), gpu_count=1, models=("acme/llm@main",))
    placed = choose([gpu_worker("a", 1), gpu_worker("b", 4, frozenset({"acme/llm@main"}))], request)
    assert isinstance(placed, Placement) and placed.worker_id == "b"


def test_weights_report_round_trip_progress_and_bad_shapes() -> None:
    report = WeightsReport(
        held=("acme/tiny@main", "acme/tiny@" + "a" * 40),
        fetching={"ctr-1": {"repo": "acme/tiny", "revision": "main", "done": 3 * 1024 * 1024, "total": 10485760}},
    )
    back = WeightsReport.from_dict(report.to_dict())
    assert back == report
    assert back.progress_text("ctr-1") == "fetching weights acme/tiny@main: 3.0 of 10.0 MiB"
    assert back.progress_text("ctr-2") is None
    assert WeightsReport.from_dict(None) == WeightsReport()
    with pytest.raises(ValueError, match="held must be a list"):
        WeightsReport.from_dict({"held": "acme/tiny@main"})


def test_container_spec_carries_models() -> None:
    spec = ContainerSpec(
        "ctr-1", "ws", "dep", "d", 1, "function", "m", "f", "c" * 64, "i" * 64, 1000, 512, 1,
        models=["acme/tiny@main"], models_url="http://127.0.0.1:1/reservoir",
    )  # fmt: skip
    back = ContainerSpec.from_dict(spec.to_dict())
    assert list(back.models) == ["acme/tiny@main"] and back.models_url == "http://127.0.0.1:1/reservoir"

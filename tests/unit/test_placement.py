"""Placement rules: pools, GPU types in preference order, whole GPUs, packed fractions, best fit, reasons."""

from __future__ import annotations

import pytest

from cove._wire.config import DeploymentConfig
from cove.exceptions import ConfigError
from cove.scheduler._placement import (
    GpuRoom,
    NoRoom,
    Placement,
    Request,
    WorkerRoom,
    choose,
    fraction_compute,
    place,
    type_matches,
)

H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-40GB"
GiB = 1024


def gpu(index: int, name: str = H100, memory: int = 80 * GiB, **used: object) -> GpuRoom:
    return GpuRoom(index=index, uuid=f"GPU-{name[7:11]}-{index}", name=name, memory_mib=memory, **used)  # type: ignore[arg-type]


def worker(
    wid: str, cpu: int = 8000, mem: int = 32 * GiB, pool: str | None = None, gpus: tuple[GpuRoom, ...] = ()
) -> WorkerRoom:
    return WorkerRoom(wid, cpu, mem, pool, gpus)


def req(**kw: object) -> Request:
    base: dict[str, object] = {"cpu_millis": 1000, "memory_mib": 512}
    base.update(kw)
    return Request(**base)  # type: ignore[arg-type]


def placed(result: Placement | NoRoom) -> Placement:
    assert isinstance(result, Placement), result
    return result


def reason(result: Placement | NoRoom) -> str:
    assert isinstance(result, NoRoom), result
    return result.reason


# -- cpu, memory, pools ---------------------------------------------------------------


def test_best_fit_picks_the_fullest_worker_that_fits_so_idle_ones_drain() -> None:
    workers = [worker("idle", cpu=8000), worker("busy", cpu=1500), worker("tiny", cpu=500)]
    assert place(workers, 1000, 512) == "busy"
    assert place(workers, 2000, 512) == "idle"
    assert place(workers, 9000, 512) is None


def test_memory_is_a_hard_filter_and_ties_break_on_memory_left() -> None:
    workers = [worker("a", cpu=2000, mem=600), worker("b", cpu=2000, mem=4096), worker("c", cpu=2000, mem=1024)]
    assert placed(choose(workers, req(memory_mib=1000))).worker_id == "c"
    assert reason(choose(workers, req(memory_mib=8192))) == "no worker with 1000m cpu and 8192 MiB memory free"


def test_plain_work_prefers_workers_without_gpus() -> None:
    workers = [worker("gpu-host", cpu=1000, gpus=(gpu(0),)), worker("cpu-host", cpu=8000)]
    assert placed(choose(workers, req())).worker_id == "cpu-host"
    # ... but uses a GPU host when nothing else fits.
    assert placed(choose(workers[:1], req())).worker_id == "gpu-host"


def test_pool_restricts_the_candidates() -> None:
    workers = [worker("a", pool="batch"), worker("b", pool="online", cpu=1000)]
    assert placed(choose(workers, req(pool="online"))).worker_id == "b"
    assert placed(choose(workers, req())).worker_id == "b"  # no pool asked: any worker, best fit
    assert reason(choose(workers, req(pool="gpu"))) == "no worker in pool 'gpu'"
    assert reason(choose([], req())) == "no worker is available to run containers"


# -- GPU types --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wanted", "name", "matches"),
    [
        ("H100", H100, True),
        ("h100", H100, True),
        ("A100", A100, True),
        ("A10", A100, False),
        ("A10G", "NVIDIA A10G", True),
        ("any", "Tesla T4", True),
        ("NVIDIA H100 80GB HBM3", H100, True),
        ("H10", H100, False),
    ],
)
def test_gpu_type_matches_a_whole_word_of_the_name(wanted: str, name: str, matches: bool) -> None:
    assert type_matches(wanted, name) is matches


def test_preference_order_is_tried_in_order() -> None:
    workers = [worker("a100", gpus=(gpu(0, A100, 40 * GiB),)), worker("h100", gpus=(gpu(0),))]
    assert placed(choose(workers, req(gpu=("H100", "A100"), gpu_count=1))).worker_id == "h100"
    assert placed(choose(workers, req(gpu=("A100", "H100"), gpu_count=1))).worker_id == "a100"
    # The first choice is taken: the second one is used.
    busy = [worker("a100", gpus=(gpu(0, A100, 40 * GiB),)), worker("h100", gpus=(gpu(0, held_whole=True),))]
    assert placed(choose(busy, req(gpu=("H100", "A100"), gpu_count=1))).worker_id == "a100"


def test_any_gpu_takes_whatever_is_free() -> None:
    workers = [worker("cpu"), worker("t4", gpus=(gpu(0, "Tesla T4", 16 * GiB),))]
    chosen = placed(choose(workers, req(gpu=("any",), gpu_count=1)))
    assert chosen.worker_id == "t4"
    assert chosen.gpus[0].name == "Tesla T4" and chosen.gpus[0].whole
    assert reason(choose([worker("cpu")], req(gpu=("any",), gpu_count=1))) == "no worker has a GPU"


# -- whole GPUs ---------------------------------------------------------------------------


def test_whole_gpus_are_exactly_the_count_asked_on_one_worker() -> None:
    four = worker("w", gpus=tuple(gpu(i) for i in range(4)))
    chosen = placed(choose([four], req(gpu=("H100",), gpu_count=2)))
    assert [g.index for g in chosen.gpus] == [0, 1]
    assert all(g.whole and g.compute == 100 and g.memory_mib == 80 * GiB for g in chosen.gpus)
    assert chosen.gpus[0].uuid == "GPU-H100-0"


def test_a_gpu_with_any_fraction_on_it_is_not_free_for_a_whole_request() -> None:
    w = worker("w", gpus=(gpu(0, used_memory_mib=1024, used_compute=5), gpu(1, held_whole=True), gpu(2)))
    assert [g.index for g in placed(choose([w], req(gpu=("H100",), gpu_count=1))).gpus] == [2]
    assert reason(choose([w], req(gpu=("H100",), gpu_count=2))) == "no worker with 2×H100 free"


def test_whole_request_packs_onto_the_worker_with_fewest_free_gpus() -> None:
    half_used = worker("half", gpus=(gpu(0, held_whole=True), gpu(1)))
    empty = worker("empty", gpus=(gpu(0), gpu(1)))
    assert placed(choose([empty, half_used], req(gpu=("H100",), gpu_count=1))).worker_id == "half"


def test_whole_request_larger_than_any_worker_says_so() -> None:
    w = worker("w", gpus=(gpu(0), gpu(1)))
    assert reason(choose([w], req(gpu=("H100",), gpu_count=4))) == "no worker has 4×H100 (at most 2)"
    assert reason(choose([w], req(gpu=("A100",), gpu_count=1))) == "no worker has a GPU of type A100"
    assert reason(choose([w], req(gpu=("A100", "A10G"), gpu_count=1))) == "no worker has a GPU of type A100 or A10G"


def test_gpus_free_but_cpu_short_names_both() -> None:
    w = worker("w", cpu=500, gpus=(gpu(0),))
    assert (
        reason(choose([w], req(gpu=("H100",), gpu_count=1)))
        == "no worker with 1×H100 free has 1000m cpu and 512 MiB memory free"
    )


# -- fractions ------------------------------------------------------------------------------


def test_fraction_gets_memory_and_proportional_compute() -> None:
    chosen = placed(choose([worker("w", gpus=(gpu(0),))], req(gpu=("H100",), gpu_memory_mib=10 * GiB)))
    (share,) = chosen.gpus
    assert (share.index, share.memory_mib, share.compute, share.whole) == (0, 10 * GiB, 12, False)
    assert fraction_compute(req(gpu_memory_mib=10 * GiB, gpu_compute=40), 80 * GiB) == 40
    assert fraction_compute(req(gpu_memory_mib=1, gpu_compute=None), 80 * GiB) == 1


def test_fractions_pack_best_fit_by_memory() -> None:
    # gpu 1 has the least memory left that still fits 10 GiB: it is chosen, gpu 0 stays open.
    w = worker(
        "w", gpus=(gpu(0, used_memory_mib=20 * GiB, used_compute=25), gpu(1, used_memory_mib=65 * GiB, used_compute=80))
    )
    chosen = placed(choose([w], req(gpu=("H100",), gpu_memory_mib=10 * GiB, gpu_compute=10)))
    assert chosen.gpus[0].index == 1
    # 16 GiB no longer fits on gpu 1 (15 GiB left): gpu 0.
    assert placed(choose([w], req(gpu=("H100",), gpu_memory_mib=16 * GiB, gpu_compute=10))).gpus[0].index == 0


def test_fractions_pack_across_workers_too() -> None:
    roomy = worker("roomy", gpus=(gpu(0),))
    snug = worker("snug", gpus=(gpu(0, used_memory_mib=60 * GiB, used_compute=60),))
    assert placed(choose([roomy, snug], req(gpu=("H100",), gpu_memory_mib=10 * GiB))).worker_id == "snug"


def test_eight_eighths_fill_one_card_and_the_ninth_waits() -> None:
    card = gpu(0)
    held = 0
    compute = 0
    for _ in range(8):
        w = worker("w", gpus=(GpuRoom(0, "GPU-x", H100, 80 * GiB, False, held, compute),))
        share = placed(choose([w], req(gpu=("H100",), gpu_memory_mib=10 * GiB))).gpus[0]
        held += share.memory_mib
        compute += share.compute
        assert compute <= 100
    assert held == card.memory_mib
    full = worker("w", gpus=(GpuRoom(0, "GPU-x", H100, 80 * GiB, False, held, compute),))
    assert reason(choose([full], req(gpu=("H100",), gpu_memory_mib=10 * GiB))) == "no GPU with 10 GiB free of type H100"


def test_fractions_never_over_commit_compute() -> None:
    w = worker("w", gpus=(gpu(0, used_memory_mib=1 * GiB, used_compute=80),))
    assert (
        reason(choose([w], req(gpu=("H100",), gpu_memory_mib=1 * GiB, gpu_compute=30)))
        == "no GPU with 1 GiB and 30% compute free of type H100"
    )
    assert placed(choose([w], req(gpu=("H100",), gpu_memory_mib=1 * GiB, gpu_compute=20))).gpus[0].compute == 20


def test_fraction_never_lands_on_a_gpu_held_whole_nor_spans_two() -> None:
    w = worker(
        "w",
        gpus=(
            gpu(0, held_whole=True),
            gpu(1, used_memory_mib=75 * GiB, used_compute=50),
            gpu(2, used_memory_mib=75 * GiB, used_compute=50),
        ),
    )
    # 5 GiB free on each of gpus 1 and 2: 10 GiB in total, but a fraction lives on one GPU.
    assert reason(choose([w], req(gpu=("H100",), gpu_memory_mib=10 * GiB))) == "no GPU with 10 GiB free of type H100"
    assert placed(choose([w], req(gpu=("H100",), gpu_memory_mib=5 * GiB))).gpus[0].index in (1, 2)


def test_fraction_bigger_than_any_card() -> None:
    w = worker("w", gpus=(gpu(0, A100, 40 * GiB),))
    assert (
        reason(choose([w], req(gpu=("A100",), gpu_memory_mib=60 * GiB))) == "no GPU of type A100 has 60 GiB of memory"
    )
    assert placed(choose([w], req(gpu=("any",), gpu_memory_mib=1536))).gpus[0].memory_mib == 1536


def test_fraction_follows_type_preference_before_fit() -> None:
    workers = [
        worker("a", gpus=(gpu(0, A100, 40 * GiB, used_memory_mib=30 * GiB, used_compute=70),)),
        worker("h", gpus=(gpu(0),)),
    ]
    assert placed(choose(workers, req(gpu=("H100", "A100"), gpu_memory_mib=5 * GiB))).worker_id == "h"
    assert placed(choose(workers, req(gpu=("A100", "H100"), gpu_memory_mib=5 * GiB))).worker_id == "a"


def test_request_from_config() -> None:
    """The config's GPU fields are what placement reads (gpu_memory in MiB, count 1 for a fraction)."""
    config = DeploymentConfig.build("endpoint", gpu=["H100", "A100"], gpu_memory="10Gi", pool="gpus")
    assert (config.gpu, config.gpu_count, config.gpu_memory_mib, config.gpu_compute, config.pool) == (
        ("H100", "A100"),
        1,
        10 * GiB,
        None,
        "gpus",
    )
    assert DeploymentConfig.build("endpoint", gpu="A10G").gpu_count == 1
    with pytest.raises(ConfigError, match="gpu_memory needs gpu="):
        DeploymentConfig.build("endpoint", gpu_memory="1Gi")
    with pytest.raises(ConfigError, match="gpu_compute must be from 1 to 100 percent of the GPU's SMs, got 150"):
        DeploymentConfig.build("endpoint", gpu="H100", gpu_memory="1Gi", gpu_compute=150)
    with pytest.raises(ConfigError, match="pool name"):
        DeploymentConfig.build("endpoint", pool="Bad Pool")

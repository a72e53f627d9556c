"""`doodlelab bench` on tiny sizes: the report's shape and sanity, never its timings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.conftest import need_module

need_module("torch", "torch")

from doodlelab.cli.commands import main
from doodlelab.config import Config, build_config
from doodlelab.studies import bench, matmul_floor
from doodlelab.tasks.threads import matmul_threads

KEYS = {"numpy_epoch_s", "torch_epoch_s", "sklearn_epoch_s", "sklearn_float64_epoch_s", "ratios",
        "gemm_peak_gflops",
        "gemm_peak_gflops_1thread", "epoch_gflop", "floor_epoch_s", "numpy_floor_fraction",
        "numpy_memory", "epoch_seconds", "threads", "layers", "batch_size", "samples",
        "sklearn_settings", "usable_cpus", "load_average", "gemm_peak_gflops_all_cpus",
        "matmul_epoch_s", "matmul_gflops", "numpy_matmul_fraction", "epoch_cpu_seconds",
        "numpy_epoch_cpu_s", "torch_epoch_cpu_s", "matmul_epoch_cpu_s", "numpy_matmul_fraction_cpu",
        "ratios_cpu"}


def _positive(value: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_epoch_flops_counts_forward_and_backward_matmuls() -> None:
    cfg = build_config({"model": {"hidden": [3]}})  # 784-3-5
    per_image = 2 * (784 * 3 + 3 * 5) * 2 + 2 * (3 * 5)  # no input gradient for the images
    assert matmul_floor.epoch_flops(cfg, 10) == 10 * per_image
    assert matmul_floor.layer_sizes(Config()) == [784, *Config().model.hidden, 5]


def test_epoch_products_are_the_counted_flops_in_training_order() -> None:
    cfg = build_config({"model": {"hidden": [6, 4]}, "train": {"batch_size": 8}})
    products = matmul_floor.epoch_products(cfg, 20)  # batches of 8, 8 and 4 images
    assert sum(2 * m * k * p for m, k, p in products) == matmul_floor.epoch_flops(cfg, 20)
    assert products[:8] == [(8, 784, 6), (8, 6, 4), (8, 4, 5),  # forward
                            (4, 8, 5), (8, 5, 4), (6, 8, 4), (8, 4, 6), (784, 8, 6)]  # backward
    assert products[-8:][0] == (4, 784, 6) and len(products) == 3 * 8
    assert sum(2 * m * k * p for m, k, p in matmul_floor.epoch_products(Config(), 20_000)) == pytest.approx(
        48.0e9, rel=0.01)


class _CountedProducts(np.ndarray):
    """An array that records the operand shapes of every matrix product it takes part in."""

    seen: list[tuple[int, int, int]] = []

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):  # type: ignore[no-untyped-def]
        plain = [np.asarray(a) for a in inputs]
        if ufunc is np.matmul:
            (m, k), (_, p) = plain[0].shape, plain[1].shape
            _CountedProducts.seen.append((m, k, p))
        return getattr(ufunc, method)(*plain, **kwargs).view(_CountedProducts)


@pytest.mark.parametrize("backward", [True, False])
def test_the_products_timer_does_exactly_an_epochs_products(backward: bool) -> None:
    cfg = build_config({"model": {"hidden": [6, 4]}, "train": {"batch_size": 8}})
    x = np.zeros((20, 784), np.float32).view(_CountedProducts)
    _CountedProducts.seen = []
    timer = matmul_floor.products_timer(matmul_floor.layer_sizes(cfg), 8, x, 0, backward=backward)
    assert timer() > 0
    expected = matmul_floor.epoch_products(cfg, 20)
    if not backward:  # scoring: each batch's forward products only
        expected = [prod for b in (8, 8, 4) for prod in [(b, 784, 6), (b, 6, 4), (b, 4, 5)]]
    assert _CountedProducts.seen == expected


def test_run_bench_report_shape_on_real_timings() -> None:
    cfg = build_config({"model": {"hidden": [16, 8]}, "train": {"batch_size": 32}})
    report = bench.run_bench(cfg, samples=100, epochs=2, warmup=1, gemm_size=64)
    assert KEYS <= set(report)
    json.dumps(report)  # JSON-ready as it is
    for name in bench.TIMED:
        assert _positive(report[f"{name}_epoch_s"])
        assert len(report["epoch_seconds"][name]) == 2
    assert len(report["epoch_seconds"]["matmuls"]) == 2 and _positive(report["matmul_epoch_s"])
    assert set(report["ratios"]) == {"numpy/torch", "numpy/sklearn", "numpy/sklearn_float64"}
    assert _positive(report["gemm_peak_gflops"]) and _positive(report["floor_epoch_s"])
    assert report["layers"] == [784, 16, 8, 5] and report["batch_size"] == 32
    assert report["threads"] == matmul_threads(32, report["layers"])
    mem = report["numpy_memory"]
    assert mem["state_bytes"] > 2 * 4 * (784 * 16)  # at least weights and gradients
    assert mem["epoch_peak_bytes"] > 0
    settings = report["sklearn_settings"]
    assert settings["solver"] == "sgd" and settings["hidden_layer_sizes"] == (16, 8)
    assert settings["batch_size"] == 32 and settings["nesterovs_momentum"] is Config().optim.nesterov
    text = bench.format_bench(report)
    assert "numpy/torch" in text and "matmuls only" in text and "0.5 x sklearn" in text


# Scripted epoch seconds: the first of each list is the warm-up epoch, which is not reported.
SCRIPT = {"numpy": [9.0, 1.0, 4.0, 2.0], "torch": [9.0, 3.0, 5.0, 4.0], "sklearn": [9.0, 8.0, 6.0, 1.0],
          "sklearn_float64": [9.0, 10.0, 10.0, 2.0], "matmuls": [9.0, 0.5, 1.5, 1.0]}


def test_report_arithmetic_on_scripted_timings(monkeypatch) -> None:
    def scripted(name):
        def maker(*args, **kwargs):
            times = iter(SCRIPT[name])
            return lambda: next(times)
        return maker

    monkeypatch.setattr(bench, "task_backend", lambda backend, *a, **k: scripted(backend)())
    monkeypatch.setattr(bench, "matmul_backend", scripted("matmuls"))
    monkeypatch.setattr(bench, "sklearn_backend", lambda *a, dtype=None, **k: scripted(
        "sklearn_float64" if dtype is not None else "sklearn")())
    monkeypatch.setattr(bench, "PAUSE_S", 0.0)
    monkeypatch.setattr(bench, "usable_cpus", lambda: 2)
    # One thread beats both on a busy machine: 50 GFLOP/s against 40.
    monkeypatch.setattr(bench, "gemm_gflops", lambda size, threads: 50.0 if threads == 1 else 40.0)
    cfg = build_config({"model": {"hidden": [16, 8]}, "train": {"batch_size": 32}})
    report = bench.run_bench(cfg, samples=100, epochs=3, warmup=1, gemm_size=64)
    # Medians of the three timed epochs (not the minimum, not the mean, not the warm-up).
    assert report["epoch_seconds"]["numpy"] == [1.0, 4.0, 2.0]
    assert [report[f"{n}_epoch_s"] for n in bench.TIMED] == [2.0, 4.0, 6.0, 10.0]
    assert report["matmul_epoch_s"] == 1.0
    assert report["ratios"] == pytest.approx(
        {"numpy/torch": 0.5, "numpy/sklearn": 1 / 3, "numpy/sklearn_float64": 0.2})
    assert report["gemm_peak_gflops"] == 50.0  # the larger of the two
    assert (report["gemm_peak_gflops_all_cpus"], report["gemm_peak_gflops_1thread"]) == (40.0, 50.0)
    # FLOP per image: forward 2 (784*16 + 16*8 + 8*5) = 25,424; weight gradients the same;
    # input gradients of the two upper layers 2 (16*8 + 8*5) = 336: 51,184; x 100 images.
    assert report["epoch_gflop"] == pytest.approx(0.0051184)
    assert report["matmul_gflops"] == pytest.approx(0.0051184)  # over 1.0 s of matmuls
    assert report["floor_epoch_s"] == pytest.approx(0.0051184 / 50)  # 1.02368e-4 s
    assert report["numpy_floor_fraction"] == pytest.approx(1.02368e-4 / 2.0)
    assert report["numpy_matmul_fraction"] == pytest.approx(0.5)  # matmuls only 1.0 / numpy 2.0
    assert "matmul share of the numpy epoch = matmuls only / numpy = 0.50" in bench.format_bench(report)
    assert len(report["epoch_cpu_seconds"]["numpy"]) == 3  # CPU seconds of the same epochs


def test_bench_cli_writes_json(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench, "GEMM_SIZE", 64)
    out = tmp_path / "bench.json"
    code = main(["bench", "--samples", "160", "--epochs", "1", "--json", str(out),
                 "--set", "model.hidden=[8]"])
    assert code == 0
    report = json.loads(out.read_text())
    assert KEYS <= set(report) and report["layers"] == [784, 8, 5]
    printed = capsys.readouterr().out
    assert "numpy" in printed and "sklearn" in printed and "floor" in printed


def test_bench_cli_rejects_bad_sizes(capsys) -> None:
    assert main(["bench", "--samples", "0"]) == 2
    assert "--samples" in capsys.readouterr().err


def test_thread_rule_single_thread_for_training_batches_all_cpus_for_big_ones(monkeypatch) -> None:
    monkeypatch.delenv("DOODLELAB_THREADS", raising=False)
    widths = [784, 512, 256, 5]
    assert matmul_threads(64, widths, cpus=2) == 1
    assert matmul_threads(128, widths, cpus=2) == 1
    assert matmul_threads(2048, widths, cpus=2) == 2
    assert matmul_threads(2048, widths, cpus=64) == 8  # 1.6 GFLOP / 200 MFLOP
    assert matmul_threads(1, [784, 5], cpus=8) == 1
    monkeypatch.setenv("DOODLELAB_THREADS", "3")
    assert matmul_threads(64, widths, cpus=2) == 3


def test_forced_threads_reach_every_backend_and_are_restored(monkeypatch) -> None:
    monkeypatch.delenv("DOODLELAB_THREADS", raising=False)
    cfg = build_config({"model": {"hidden": [8]}, "train": {"batch_size": 16}})
    report = bench.run_bench(cfg, samples=32, epochs=1, warmup=0, gemm_size=32, threads=2)
    assert report["threads"] == 2 and report["threads_forced"] is True
    assert "DOODLELAB_THREADS" not in __import__("os").environ
    assert "forced" in bench.format_bench(report)


def test_the_bench_epoch_is_the_fit_loops_training_epoch() -> None:
    """Two bench epochs leave the model exactly where two epochs of fit leave it."""
    from doodlelab.tasks.streams import Streams
    from doodlelab.training.fit import fit_new
    from doodlelab.training.registry import make_task

    cfg = build_config({"model": {"hidden": [16, 8]}, "train": {"batch_size": 32, "epochs": 2},
                        "augment": {"enabled": True, "shift": 2}})
    x, y = bench.synthetic_data(100)
    streams = Streams.from_seed(cfg.train.seed)
    task = make_task(cfg, "numpy", "classifier", streams=streams)
    seconds = [bench.fit_epoch(task, x, y, cfg, streams, epoch) for epoch in range(2)]
    assert all(_positive(s) for s in seconds)
    fitted, _ = fit_new(cfg, "numpy", "classifier", x, y, x[:10], y[:10], progress=False)
    for name, value in fitted.training_state().items():
        np.testing.assert_array_equal(task.training_state()[name], value, err_msg=name)

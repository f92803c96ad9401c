"""The XLA probe's cache and choice: keyed by what shapes the step, reused, atomic; the margin."""

import json

import pytest

from keel.executors.training import probe_cache
from keel.executors.training.jit import ModeTiming, choose_jit, decide, over_budget, probe_cost_s, window_steps


def fields(**changed) -> dict:
    values = dict(
        module_sha256="a" * 64,
        hparams={"hidden": [32, 16], "learning_rate": 0.01},
        batch_size=32,
        features={"numeric": ["x"], "categorical": {}, "classes": 3},
        training={"task": "classification", "precision": "float32"},
        device={"device": "cpu", "replicas": 1, "model": "x86_64", "cpus": 2},
        stack={"tensorflow": "2.16.2", "keras": "3.6.0", "python": "3.11.2"},
    )
    values.update(changed)
    return probe_cache.key_fields(**values)


def test_the_key_ignores_the_learning_rate_and_nothing_else(tmp_path):
    key = probe_cache.ProbeCache(tmp_path, fields()).key
    assert probe_cache.ProbeCache(tmp_path, fields(hparams={"hidden": [32, 16], "learning_rate": 0.5})).key == key
    for other in (
        fields(module_sha256="b" * 64),
        fields(hparams={"hidden": [64], "learning_rate": 0.01}),
        fields(batch_size=64),
        fields(device={"device": "gpu", "replicas": 1, "model": "H200"}),
        fields(stack={"tensorflow": "2.21.0", "keras": "3.15.1", "python": "3.13.5"}),
    ):
        assert probe_cache.ProbeCache(tmp_path, other).key != key


def test_saved_atomically_and_loaded_only_for_its_own_key(tmp_path):
    cache = probe_cache.ProbeCache(tmp_path / "cache", fields())
    assert cache.load() is None
    path = cache.save({"graph": {"jit_compile": False, "fixed_s": 0.1, "step_s": 0.002}, "xla": None})
    assert path == cache.path and [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    assert cache.load()["graph"]["step_s"] == 0.002
    stored = json.loads(path.read_text())
    stored["fields"]["batch_size"] = "tampered"
    path.write_text(json.dumps(stored))
    assert cache.load() is None
    path.write_text("{not json")
    assert cache.load() is None


def test_xla_must_win_by_the_margin():
    graph = ModeTiming(False, fixed_s=0.0, step_s=0.0100)
    assert decide(graph, ModeTiming(True, 0.0, 0.0099), 100) == (
        False,
        "graph mode kept (the default): XLA measured only 1.01x faster over 100 steps, within the 3% margin",
    )
    assert decide(graph, ModeTiming(True, 0.0, 0.0080), 100) == (True, "XLA measured 1.25x faster over 100 steps")
    assert decide(graph, ModeTiming(True, 5.0, 0.0080), 100)[0] is False  # the compile does not pay off


def test_windows_grow_with_the_planned_steps_within_bounds():
    assert [window_steps(n) for n in (10, 300, 5000)] == [4, 6, 10]


def test_a_cached_measurement_is_reused_without_building_a_model(tmp_path):
    cache = probe_cache.ProbeCache(tmp_path, fields())
    cache.save(
        {
            "graph": {"jit_compile": False, "fixed_s": 0.5, "step_s": 0.002},
            "xla": {"jit_compile": True, "fixed_s": 2.0, "step_s": 0.001},
            "xla_problem": None,
        }
    )

    def never(_=None):
        raise AssertionError("a cached measurement must not probe")

    few, many = (
        choose_jit("auto", never, never, 100, cache=cache),
        choose_jit("auto", never, never, 10_000, cache=cache),
    )
    assert (few.jit_compile, many.jit_compile) == (False, True)  # the same measurement, decided per run's steps
    assert many.as_dict()["probe_reused"] is True and many.as_dict()["probe_cache"] == str(cache.path)


def test_the_budget_weighs_the_probe_against_the_predicted_training():
    graph = ModeTiming(False, fixed_s=1.0, step_s=0.01)
    assert over_budget(graph, probe_s=1.0, planned_steps=100, budget=0.05) == (
        "graph mode kept (the default) without timing XLA: 100 steps are predicted to take 2.0s, and timing "
        "XLA would cost about 1.0s, over the 5% budget (train.jit_probe_budget)"
    )
    assert over_budget(graph, probe_s=1.0, planned_steps=10_000, budget=0.05) is None  # 1s of 101s
    assert over_budget(graph, probe_s=1.0, planned_steps=100, budget=None) is None
    # Graph mode's set-up twice (XLA's is at least as long), and every window at graph mode's step.
    assert probe_cost_s(graph, graph_setup_s=0.5, window=4) == 2 * 0.5 + 2 * 3 * 4 * 0.01


def test_a_graph_only_measurement_is_reused_for_short_runs_and_completed_for_long_ones(tmp_path):
    cache = probe_cache.ProbeCache(tmp_path, fields())
    cache.save(
        {
            "graph": {"jit_compile": False, "fixed_s": 0.5, "step_s": 0.002},
            "xla": None,
            "xla_problem": None,
            "probe_cost_s": 2.0,
        }
    )

    def never(_=None):
        raise AssertionError("probed again")

    short = choose_jit("auto", never, never, 100, cache=cache)
    assert short.jit_compile is False and short.probe_reused is True
    assert short.reason.startswith("graph mode kept (the default) without timing XLA: 100 steps")
    with pytest.raises(AssertionError, match="probed again"):  # 20,000 steps: 40.5s, the probe 2s of it
        choose_jit("auto", never, never, 20_000, cache=cache)

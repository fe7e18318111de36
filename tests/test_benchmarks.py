"""The train-loop benchmark measures what it claims: every competitor trains the same network the
same way (their losses agree with the hand-written jax + optax loop: here for fnlearn's and the jax
loops, through the script's --smoke check that also covers flax, equinox and torch where installed),
the FLOP formula matches XLA's own count, donation is detected, and vmapped replicas equal
sequential runs. No timings are checked."""

import dataclasses
import importlib.util
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "experiments" / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


tl = load("train_loop")

# The competitors that need nothing beyond the test extra. flax, equinox and torch are not test
# dependencies: `python experiments/benchmarks/train_loop.py --smoke` checks them where installed.
# (fit's two explicit drivers are left out here: tests/test_drivers.py checks they train alike.)
JAX_COMPETITORS = [
    name
    for name, (package, _) in tl.COMPETITORS.items()
    if package in (None, "fnlearn") and "driver=" not in name
]


def test_smoke_trains_every_jax_competitor_like_the_handwritten_loop(capsys):
    """`train_loop.py --smoke` on fnlearn's and the hand-written jax loops: each trains the tiny
    full-batch workload from the same weights, and its loss falls and agrees with the scan's."""
    rows = {r["competitor"]: r for r in tl.main(["--smoke", "--competitors", ",".join(JAX_COMPETITORS)])}
    assert sorted(rows) == sorted(set(JAX_COMPETITORS) - {"jax scan"})
    assert "DIFFERS" not in capsys.readouterr().out
    fit = rows["fnlearn fit"]
    for name, r in rows.items():
        # 2 calls × 5 full-batch Adam steps from the same weights: the loss went down and agrees
        assert r["agrees"] and r["final_loss"] < 0.9 * r["initial_loss"], name
        np.testing.assert_allclose(r["final_loss"], r["reference_loss"], rtol=tl.SMOKE_RTOL)
        assert r["steps_per_s"] > 0 and r["gflops"] > 0
        # fnlearn fit ÷ this: the one round's time of this competitor over fit's in the same round
        assert r["baseline"] == "fnlearn fit"
        np.testing.assert_allclose(r["baseline_over_this"], r["times_s"][0] / fit["times_s"][0], rtol=1e-12)


def test_smoke_exits_non_zero_when_a_competitor_trains_differently(monkeypatch, capsys):
    """A loop that starts from other weights (the scan from 1.01 × the shared ones) must fail the
    smoke check, with the competitor's name in the message."""

    def shifted_scan(problem):
        return tl.make_jax_scan(
            dataclasses.replace(problem, layers=[(1.01 * w, b) for w, b in problem.layers])
        )

    monkeypatch.setitem(tl.COMPETITORS, "shifted scan", (None, shifted_scan))
    with pytest.raises(SystemExit, match="shifted scan did not train like the hand-written"):
        tl.main(["--smoke", "--competitors", "shifted scan"])
    line = next(line for line in capsys.readouterr().out.splitlines() if "shifted scan" in line)
    assert line.endswith("DIFFERS")


def test_fit_takes_the_same_minibatches_as_the_handwritten_scan():
    """Minibatches of 8 from 48 examples: the losses agree only if fit and the scan visit the
    examples in the same order (every competitor draws fit's epoch order)."""
    workload = tl.Workload("minibatch", (8, 16, 16, 3), batch=8, n=48, epochs=3)
    factories = {name: tl.COMPETITORS[name][1] for name in ("fnlearn fit", "jax scan")}
    rows = {r["competitor"]: r for r in tl.bench_workload(workload, factories, repeats=1)}
    np.testing.assert_allclose(rows["fnlearn fit"]["final_loss"], rows["jax scan"]["final_loss"], rtol=1e-4)


def test_interleaved_rounds_run_everyone_once_in_varying_order():
    calls = []
    runs = {name: (lambda name=name: calls.append(name)) for name in "abcd"}
    results = tl.interleaved_medians(runs, repeats=6)
    assert calls[:4] == list("abcd") and all(len(r["times_s"]) == 6 for r in results.values())
    rounds = [tuple(calls[4 + 4 * i : 8 + 4 * i]) for i in range(6)]
    assert all(sorted(r) == list("abcd") for r in rounds) and len(set(rounds)) > 1


def test_initial_weights_are_fnlearns_mlp_init():
    """Every competitor starts from fnlearn's MLP initialisation: He-normal hidden layers
    (Var = 2/fan_in), LeCun-normal output (Var = 1/fan_in), zero biases."""
    layers = tl.initial_layers((256, 512, 256), seed=0)
    assert [w.shape for w, _ in layers] == [(256, 512), (512, 256)]
    assert all(np.all(b == 0) for _, b in layers)
    np.testing.assert_allclose(np.var(layers[0][0]), 2 / 256, rtol=0.05)
    np.testing.assert_allclose(np.var(layers[1][0]), 1 / 512, rtol=0.05)


def test_flop_formula_matches_xla_count():
    """6·B·Σ fan_in·fan_out counts x·W, and the two products of its backward pass, for every layer;
    XLA's cost analysis of the gradient with respect to weights *and* inputs (so no product is
    skipped) must agree up to the elementwise work (bias, relu, softmax), a few percent here."""
    sizes, batch = (64, 128, 128, 10), 32
    layers = tl.device_layers(tl.initial_layers(sizes, seed=0))
    x = jnp.ones((batch, sizes[0]))
    y = jnp.zeros((batch,), jnp.int32)
    grad = jax.jit(jax.grad(lambda p, x: tl.cross_entropy(tl.mlp_logits(p, x), y), argnums=(0, 1)))
    cost = grad.lower(layers, x).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    formula = tl.dense_train_flops(sizes, batch)
    assert formula == 6 * 32 * (64 * 128 + 128 * 128 + 128 * 10)
    assert 1.0 <= cost["flops"] / formula < 1.05


def test_epoch_batches_is_a_permutation_without_replacement():
    order = np.asarray(tl.epoch_batches(jax.random.key(3), 2, 100, 32))
    assert order.shape == (3, 32)
    assert len(np.unique(order)) == 96 and order.min() >= 0 and order.max() < 100
    other = np.asarray(tl.epoch_batches(jax.random.key(3), 3, 100, 32))
    assert not np.array_equal(order, other)  # a fresh permutation each epoch


@pytest.mark.parametrize(
    "variant, donated", [("jax donate", True), ("jax no donate", False), ("fnlearn fit", True)]
)
def test_memory_probe_detects_donation(variant, donated):
    row = tl.memory_probe(variant, [8, 16, 4], steps=2, batch=4)
    assert row["donated"] is donated
    assert row["num_params"] == 8 * 16 + 16 + 16 * 4 + 4


def test_reference_sizes_keep_the_depth():
    assert tl.reference_sizes([2048, 4096, 4096, 4096, 2048]) == [32, 64, 64, 64, 32]


def test_vmapped_replicas_equal_sequential_runs():
    """Replica i of one vmapped program ends where run i alone ends (fnlearn's replicas and the
    hand-written vmap of the scan), and the seeds make the replicas differ."""
    rows = tl.bench_replicas(tl.Workload("tiny", (8, 16, 3), batch=8, n=40, epochs=3), replicas=3, repeats=1)
    assert [r["vmapped"] for r in rows] == [
        "fnlearn replicas.fit (vmapped)",
        "jax: vmap of the hand-written scan",
    ]
    for r in rows:
        assert r["max_loss_difference"] < 1e-5
        assert len(np.unique(np.round(r["final_losses"], 6))) == 3


def test_handwritten_step_is_optax_adam_on_the_cross_entropy():
    """One step of the shared hand-written step equals Adam's first update, θ − lr·g/(|g| + ε),
    with g from jax.grad of the mean cross-entropy written out by hand (logsumexp − z_y)."""
    layers = tl.device_layers(tl.initial_layers((4, 6, 3), seed=1))
    x = jax.random.normal(jax.random.key(0), (10, 4))
    y = jnp.arange(10) % 3
    tx = optax.adam(tl.LEARNING_RATE)
    new, _, loss = jax.jit(tl.handwritten_step(tx))(layers, tx.init(layers), x, y)

    def by_hand(p):
        z = tl.mlp_logits(p, x)
        return jnp.mean(jax.nn.logsumexp(z, axis=1) - z[jnp.arange(10), y])

    g = jax.grad(by_hand)(layers)
    expected = jax.tree.map(lambda p, g: p - tl.LEARNING_RATE * g / (jnp.abs(g) + 1e-8), layers, g)
    np.testing.assert_allclose(loss, by_hand(layers), rtol=1e-6)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_quick_run_writes_table_figure_and_json(tmp_path):
    out = tmp_path / "out"
    json_path = tmp_path / "numbers.json"
    argv = [
        "--quick",
        "--workload",
        "small",
        "--sections",
        "throughput",
        "--competitors",
        "jax scan,jax jit loop",
    ]
    tl.main([*argv, "--out", str(out), "--json", str(json_path)])
    results = json.loads(json_path.read_text())
    rows = results["workloads"]["small"]["rows"]
    assert [r["competitor"] for r in rows] == ["jax scan", "jax jit loop"]
    for r in rows:
        assert r["steps_per_s"] > 0 and len(r["times_s"]) == 1
        np.testing.assert_allclose(r["gflops"], r["steps_per_s"] * 6 * 32 * 25_856 / 1e9)
        assert r["final_loss"] < r["initial_loss"]
    assert results["matmul_peak"]["gflops"] > 0 and results["machine"]["cores"] >= 1
    assert (out / "train_loop.png").stat().st_size > 10_000
    assert "| jax scan |" in (out / "train_loop.md").read_text()


def test_targets_read_their_thresholds_from_the_table():
    def rows(**ratios):  # fnlearn fit ÷ each competitor, as bench_workload's paired ratios
        return [
            {
                "competitor": k.replace("_", " "),
                "baseline": "fnlearn fit",
                "baseline_over_this": v,
                "fraction_of_peak": 0.5,
            }
            for k, v in ratios.items()
        ]

    results = {
        "workloads": {
            "small": {"rows": rows(fnlearn_fit=1.0, jax_scan=0.96, flax_linen=3.2, torch_eager=9.6)}
        },
        "memory": [{"variant": "fnlearn fit", "donated": True}],
    }
    by_name = {t["target"]: t for t in tl.targets(results)}
    scan = by_name["small: fnlearn fit ÷ jax scan ≥ 0.95"]
    assert scan["measured"] == pytest.approx(0.96) and scan["met"] is True
    assert by_name["small: fnlearn fit ÷ flax linen ≈ 3"]["measured"] == pytest.approx(3.2)
    assert by_name["small: fnlearn fit ÷ torch eager ≈ 8"]["met"] is True
    assert by_name["large: fnlearn fit ÷ jax scan ≥ 0.95"] == {
        "target": "large: fnlearn fit ÷ jax scan ≥ 0.95",
        "measured": None,
        "met": None,
    }
    assert by_name["memory: fnlearn fit donates its buffers"]["met"] is True


def test_handwritten_cnn_and_gpt_are_fnlearns_networks(monkeypatch):
    """The hand-written jax CNN and GPT of the deep workloads, on fnlearn's parameter trees, give
    fnlearn's own logits (so their final losses check that fit trained the same network). The GPT
    shrunk to one block of width 32 on 8 tokens: the same code, a fraction of the compilation."""
    deep = tl.deep
    for name, value in (("DEPTH", 1), ("SEQ", 8), ("WIDTH", 32)):
        monkeypatch.setattr(deep, name, value)
    for kind in ("cnn", "gpt"):
        workload = deep.DeepWorkload(kind, kind, batch=2, n=2, epochs=1)
        problem = deep.make_problem(workload)
        model = deep.fnlearn_model(workload)
        params = jax.tree.map(jnp.asarray, problem.params)
        _, model_state = jax.jit(model.init)(jax.random.key(0))
        apply = jax.jit(lambda p, s, x, model=model: model.apply(p, s, x)[0])  # jitted: few compilations
        ours = apply(params, model_state, jnp.asarray(problem.x, jnp.float32))
        theirs = jax.jit(deep.logits_fn(workload))(params, jnp.asarray(problem.x))
        np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)


def test_fit_is_judged_against_the_faster_handwritten_driver():
    """On the CNN the loop is the faster hand-written driver, on the MLP the scan: the target
    reads fit ÷ the faster one, the smaller of the two ratios."""
    rows = lambda **r: [  # noqa: E731
        {
            "competitor": k.replace("_", " "),
            "baseline": "fnlearn fit",
            "baseline_over_this": v,
            "fraction_of_peak": 0.5,
        }
        for k, v in r.items()
    ]
    results = {
        "workloads": {
            "cnn": {"rows": rows(fnlearn_fit=1.0, jax_scan=5.0, jax_jit_loop=0.97, flax_linen=1.1)},
            "small": {"rows": rows(fnlearn_fit=1.0, jax_scan=0.9, jax_jit_loop=1.4, flax_linen=0.99)},
        }
    }
    by_name = {t["target"]: t for t in tl.targets(results)}
    cnn = by_name["cnn: fnlearn fit ÷ faster hand-written driver ≥ 0.95"]
    assert cnn["measured"] == pytest.approx(0.97) and cnn["met"] is True
    small = by_name["small: fnlearn fit ÷ faster hand-written driver ≥ 0.95"]
    assert small["measured"] == pytest.approx(0.9) and small["met"] is False
    assert by_name["cnn: fnlearn fit ahead of flax linen"]["met"] is True
    assert by_name["small: fnlearn fit ahead of flax linen"]["met"] is False
    assert by_name["gpt: fnlearn fit ahead of flax linen"]["measured"] is None

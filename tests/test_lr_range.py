"""fl.lr_find (Smith 2017) on quadratics whose divergence point theory gives, against a hand loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hostile import run_cli

import fnlearn as fl
from fnlearn.errors import FnlearnError
from fnlearn.lr_range import smooth


def _quadratic(curvatures):
    """A model whose output is its parameter θ (per example); loss ½ Σ λ_i θ_i²: GD at rate η maps
    θ_i to (1 − ηλ_i)·θ_i, so the loss grows exactly when η > 2/λ_max (λ_max's component)."""
    lam = jnp.asarray(curvatures, jnp.float32)
    d = len(curvatures)

    def init(key, in_shape):
        return (d,), {"theta": jnp.ones(d)}, {}

    def apply(params, state, x, *, train=False, key=None):
        return jnp.broadcast_to(params["theta"], (x.shape[0], d)), state

    def loss(outputs, y, w):
        return 0.5 * jnp.mean(jnp.sum(lam * outputs**2, axis=-1))

    model = fl.nn.build(fl.nn.Layer("quadratic", init, apply), 1)
    return model, loss, (np.zeros((8, 1), np.float32), np.zeros((8, 1), np.float32))


def test_on_a_quadratic_the_loss_turns_up_exactly_past_2_over_lambda():
    lam = 10.0
    model, loss, data = _quadratic([lam])
    state = fl.TrainState.create(model, fl.optim.sgd(1.0), 0)
    result = fl.lr_find(state, data, loss=loss, min_lr=1e-3, max_lr=10.0, steps=100, batch_size=4)
    eta, losses = result.learning_rates, result.losses
    # ℓ_{t+1} = (1 − η_t λ)² ℓ_t: the sweep is SGD at η_t, step by step
    np.testing.assert_allclose(losses[1:] / losses[:-1], (1 - eta[:-1] * lam) ** 2, rtol=1e-4)
    rising = losses[1:] > losses[:-1]
    np.testing.assert_array_equal(rising, eta[:-1] > 2 / lam)
    # the smoothed loss (which still remembers the first, large losses) blows up some steps later
    assert result.diverged_at > 2 / lam and losses[-1] > 1e3 * losses.min()
    assert result.suggestion < 2 / lam
    np.testing.assert_array_equal(state.params["theta"], np.ones(1))  # the state is untouched


def test_several_curvatures_diverge_past_2_over_lambda_max_only():
    model, loss, data = _quadratic([0.5, 2.0, 8.0])
    state = fl.TrainState.create(model, fl.optim.sgd(1.0), 0)
    result = fl.lr_find(state, data, loss=loss, min_lr=1e-3, max_lr=10.0, steps=100, batch_size=4)
    assert result.diverged_at > 2 / 8.0
    assert np.all(np.diff(result.losses[result.learning_rates <= 2 / 8.0]) < 0)


def test_the_sweep_runs_the_states_own_optimizer_at_each_rate():
    """Adam at η_t, step by step, equals optax.adam with its learning rate injected per step."""
    x = np.random.default_rng(0).normal(size=(16, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int32)
    head = fl.distributions.get("categorical")
    state = fl.TrainState.create(fl.nn.mlp([3, 4, 2]), fl.optim.adam(1e-3), 0)
    result = fl.lr_find(
        state, (x, y), loss=head, min_lr=1e-4, max_lr=1.0, steps=12, batch_size=16, diverge=1e9
    )
    tx = optax.inject_hyperparams(optax.adam)(learning_rate=1.0)
    params, opt = state.params, tx.init(state.params)
    nll = fl.losses.nll(head)
    value_and_grad = jax.jit(
        jax.value_and_grad(lambda p: nll(state.model.apply(p, state.model_state, x)[0], y))
    )
    update = jax.jit(tx.update)
    for t, rate in enumerate(result.learning_rates):
        value, grads = value_and_grad(params)
        np.testing.assert_allclose(result.losses[t], value, rtol=1e-5)
        opt.hyperparams["learning_rate"] = jnp.asarray(rate, jnp.float32)
        updates, opt = update(grads, opt, params)
        params = optax.apply_updates(params, updates)


def test_smoothing_is_a_bias_corrected_ema():
    values = np.array([3.0, 1.0, 2.0, 5.0])
    beta = 0.5
    s, expected = 0.0, []
    for t, v in enumerate(values):
        s = beta * s + (1 - beta) * v
        expected.append(s / (1 - beta ** (t + 1)))
    np.testing.assert_allclose(smooth(values, beta), expected)
    assert smooth(np.array([7.0]))[0] == 7.0


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"min_lr": 1.0, "max_lr": 0.1}, "must be larger than min_lr"),
        ({"steps": 2}, "steps"),
        ({"min_lr": 0.0}, "min_lr"),
        ({"diverge": 1.0}, "diverge must be a number > 1"),
    ],
)
def test_mistakes_are_one_line(kwargs, needle):
    model, loss, data = _quadratic([1.0])
    state = fl.TrainState.create(model, fl.optim.sgd(1.0), 0)
    with pytest.raises(FnlearnError, match=needle):
        fl.lr_find(state, data, loss=loss, batch_size=4, **kwargs)


def test_an_optimizer_without_a_known_rate_is_one_line():
    model, loss, data = _quadratic([1.0])
    state = fl.TrainState.create(model, optax.sgd(0.1), 0)
    with pytest.raises(FnlearnError, match="keeps its learning rate in its state"):
        fl.lr_find(state, data, loss=loss, batch_size=4)


def test_the_command_writes_the_figure_and_prints_the_suggestion(tmp_path, capsys, monkeypatch):
    (tmp_path / "c.toml").write_text(
        '[data]\nname = "iris"\n[model]\nsizes = [8]\n[training]\nbatch_size = 16\n'
    )
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(
        ["lr-find", "c.toml", "--steps", "30", "--min-lr", "1e-5", "--max-lr", "100"], capsys
    )
    assert code == 0
    assert "suggested learning rate:" in out and "figure: lr_find.png" in out
    assert (tmp_path / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "lr_find.png"]

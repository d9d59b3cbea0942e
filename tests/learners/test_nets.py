import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.learners.nets import MLP, ActorCritic, masked_categorical


def test_actor_critic_shapes_and_fused_forward_equals_per_row():
    net = ActorCritic(num_actions=3, hidden_sizes=(8, 8), activation="relu")
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 5, 4))
    params = jax.jit(net.init)(jax.random.PRNGKey(1), x)
    apply = jax.jit(net.apply)
    logits, value = apply(params, x)
    assert logits.shape == (2, 5, 3) and value.shape == (2, 5)
    assert logits.dtype == jnp.float32 and value.dtype == jnp.float32
    rows = [apply(params, x[i, j]) for i in range(2) for j in range(5)]
    np.testing.assert_allclose(np.stack([r[0] for r in rows]), logits.reshape(10, 3), atol=1e-6)
    np.testing.assert_allclose(np.array([r[1] for r in rows]), value.reshape(10), atol=1e-6)
    np.testing.assert_array_equal(net.apply(params, x, method="value"), value)


def test_actor_head_starts_near_uniform_and_mlp_widths():
    net = ActorCritic(num_actions=4)
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 6))
    logits, _ = jax.jit(lambda k: net.apply(net.init(k, x), x))(jax.random.PRNGKey(1))
    assert float(jnp.abs(logits).max()) < 0.1  # gain-0.01 head: near-uniform initial policy
    mlp = MLP(hidden_sizes=(5, 7), activation="gelu")
    out = jax.jit(lambda k: mlp.apply(mlp.init(k, x), x))(jax.random.PRNGKey(0))
    assert out.shape == (64, 7)


def test_unknown_activation_raises():
    net = MLP(activation="sigmoidish")
    with pytest.raises(ValueError, match="activation"):
        net.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))


def test_masked_categorical_matches_numpy_and_never_samples_illegal():
    logits = jnp.array([[0.3, 2.0, -1.0, 0.5], [1.0, 1.0, 1.0, 1.0]], jnp.float32)
    mask = jnp.array([[True, False, True, True], [False, False, True, False]])
    dist = masked_categorical(logits, mask)
    probs = np.asarray(dist.probs)
    ref = np.where(np.asarray(mask), np.exp(np.asarray(logits, np.float64)), 0.0)
    ref /= ref.sum(-1, keepdims=True)
    np.testing.assert_allclose(probs, ref, atol=1e-6)
    assert (probs[~np.asarray(mask)] == 0.0).all()
    with np.errstate(divide="ignore", invalid="ignore"):
        ref_ent = -np.nansum(np.where(ref > 0, ref * np.log(ref), 0.0), -1)
    np.testing.assert_allclose(dist.entropy(), ref_ent, atol=1e-6)
    np.testing.assert_allclose(dist.log_prob(jnp.array([3, 2])), np.log(ref[[0, 1], [3, 2]]),
                               atol=1e-6)
    draws = dist.sample(seed=jax.random.PRNGKey(0), sample_shape=(4000,))
    assert np.asarray(mask)[np.arange(2), np.asarray(draws)].all()
    counts = np.bincount(np.asarray(draws[:, 0]), minlength=4) / 4000
    np.testing.assert_allclose(counts, ref[0], atol=0.03)


def test_masked_categorical_gradients_are_finite_and_zero_on_illegal():
    mask = jnp.array([True, False, True])

    def objective(z):
        dist = masked_categorical(z, mask)
        return dist.entropy() + dist.log_prob(2)

    grad = jax.grad(objective)(jnp.array([1.0, 50.0, -3.0]))
    assert np.isfinite(np.asarray(grad)).all() and float(grad[1]) == 0.0
    no_legal = masked_categorical(jnp.array([1.0, 2.0]), jnp.array([False, False]))
    np.testing.assert_allclose(no_legal.probs, [0.5, 0.5])  # uniform, finite

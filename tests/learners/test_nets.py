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


def test_orthogonal_init_is_orthonormal_and_vmaps():
    from dtwin_jax.learners.nets import orthogonal

    for shape in ((16, 64), (64, 64), (64, 3)):
        w = np.asarray(orthogonal(2.0)(jax.random.PRNGKey(0), shape), np.float64)
        gram = w.T @ w if shape[0] >= shape[1] else w @ w.T
        np.testing.assert_allclose(gram, 4.0 * np.eye(len(gram)), atol=1e-4)
    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    batched = jax.jit(jax.vmap(lambda k: orthogonal()(k, (8, 4))))(keys)
    np.testing.assert_allclose(batched[1], orthogonal()(keys[1], (8, 4)), atol=1e-6)


def test_gru_output_after_reset_equals_fresh_state():
    from dtwin_jax.learners.nets import ResetGRU

    gru = ResetGRU(hidden_size=5)
    t, b, d = 6, 3, 4
    x = jax.random.normal(jax.random.PRNGKey(0), (t, b, d))
    reset = np.zeros((t, b), bool)
    reset[3, 1] = True  # twin 1 starts a new episode at t = 3
    h0 = jax.random.normal(jax.random.PRNGKey(1), (b, 5))  # a stale state
    params = gru.init(jax.random.PRNGKey(2), h0, (x, jnp.asarray(reset)))
    _, y = jax.jit(gru.apply)(params, h0, (x, jnp.asarray(reset)))
    assert y.shape == (t, b, 5)
    fresh = ResetGRU.initial_state((b,), 5)
    _, y_fresh = gru.apply(params, fresh, (x[3:], jnp.zeros((t - 3, b), bool)))
    np.testing.assert_allclose(y[3:, 1], y_fresh[:, 1], atol=1e-6)
    _, y_none = gru.apply(params, h0, (x, jnp.zeros((t, b), bool)))
    np.testing.assert_allclose(y[:, 0], y_none[:, 0], atol=1e-6)  # other twins untouched
    assert not np.allclose(y[3:, 1], y_none[3:, 1])


def test_q_heads_masks_never_pick_illegal_and_dueling_centres_on_legal():
    from dtwin_jax.learners.nets import MASKED_Q, QHead, greedy_action, masked_q

    h = jax.random.normal(jax.random.PRNGKey(0), (50, 6))
    mask = jax.random.bernoulli(jax.random.PRNGKey(1), 0.4, (50, 2, 4)).at[:, :, 0].set(True)
    for dueling in (False, True):
        head = QHead(q_shape=(2, 4), dueling=dueling)
        params = head.init(jax.random.PRNGKey(2), h, mask)
        q = head.apply(params, h, mask) * 1e3  # large legal values must still not win
        assert q.shape == (50, 2, 4)
        a = np.asarray(greedy_action(q, mask))
        assert np.take_along_axis(np.asarray(mask), a[..., None], -1).all()
        qm = np.asarray(masked_q(q, mask))
        assert np.isfinite(qm).all() and (qm[~np.asarray(mask)] == MASKED_Q).all()
    head = QHead(q_shape=(4,), dueling=True)
    params = head.init(jax.random.PRNGKey(3), h)
    # with params of the value stream zeroed, Q is the advantage centred on the legal actions
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    dense_1 = [p for p, _ in flat if "Dense_1" in jax.tree_util.keystr(p)]
    assert dense_1
    zeroed = jax.tree_util.tree_map_with_path(
        lambda p, x: jnp.zeros_like(x) if "Dense_1" in jax.tree_util.keystr(p) else x, params)
    m = mask[:, 0]
    q = head.apply(zeroed, h, m)
    np.testing.assert_allclose(np.where(m, q, 0).sum(-1), 0.0, atol=1e-4)


def test_multidiscrete_distribution_masks_factors_and_sums_log_probs():
    from dtwin_jax.learners.nets import ActionSpec, policy_distribution

    spec = ActionSpec("multi_discrete", (2,), (3, 2))
    logits = jax.random.normal(jax.random.PRNGKey(0), (5, 2, 3))
    mask = jnp.array([[True, False, True], [True, True, True]])  # value 2 of factor 1 not real
    pi = policy_distribution(spec, logits, jnp.broadcast_to(mask, (5, 2, 3)))
    draws = np.asarray(jax.vmap(pi.sample)(jax.random.split(jax.random.PRNGKey(1), 400)))
    assert draws.shape == (400, 5, 2)
    assert not (draws[..., 0] == 1).any() and not (draws[..., 1] == 2).any()
    a = jnp.array([[2, 1]] * 5)
    per_factor = [masked_categorical(logits[:, 0], mask[0]).log_prob(a[:, 0]),
                  masked_categorical(logits[:, 1], mask[1] & jnp.array([1, 1, 0], bool))
                  .log_prob(a[:, 1])]
    np.testing.assert_allclose(pi.log_prob(a), per_factor[0] + per_factor[1], atol=1e-5)
    assert np.isfinite(np.asarray(pi.entropy())).all()


def test_squashed_gaussian_log_prob_is_density_of_env_action():
    from dtwin_jax.learners.nets import ActionSpec, policy_distribution

    spec = ActionSpec("box", (1,), (), (-1.0,), (3.0,))
    mean, log_std = jnp.array([[0.3]]), jnp.array([0.2])
    pi = policy_distribution(spec, (mean, log_std))
    u = jnp.linspace(-6.0, 6.0, 2001)[:, None]
    y = np.asarray(pi.env_action(u))[:, 0]
    assert (y >= -1.0).all() and (y <= 3.0).all()
    dens = np.exp(np.asarray(pi.log_prob(u)))
    # the density of y integrates to 1 over [low, high] (trapezoid on the mapped grid)
    np.testing.assert_allclose(np.sum(0.5 * (dens[1:] + dens[:-1]) * np.diff(y)), 1.0, atol=2e-3)
    far = pi.log_prob(jnp.array([[40.0]]))  # tanh saturates: still finite
    assert np.isfinite(np.asarray(far)).all()
    plain = policy_distribution(ActionSpec("box", (1,), (), (-1.0,), (3.0,), squash=False),
                                (mean, log_std))
    np.testing.assert_allclose(plain.env_action(jnp.array([[7.0]])), [[3.0]])


def test_dirichlet_concentration_bounded_and_samples_on_simplex():
    from dtwin_jax.learners.nets import DIRICHLET_RANGE, ActionSpec, policy_distribution

    spec = ActionSpec("simplex", (3,), (3,))
    z = jnp.array([[-50.0, 0.0, 1e4]])
    pi = policy_distribution(spec, z)
    conc = np.asarray(pi.dist.concentration)
    assert conc.min() >= DIRICHLET_RANGE[0] and conc.max() <= DIRICHLET_RANGE[1]
    x = jax.vmap(pi.sample)(jax.random.split(jax.random.PRNGKey(0), 200))
    np.testing.assert_allclose(np.asarray(x).sum(-1), 1.0, atol=1e-5)
    assert np.isfinite(np.asarray(jax.vmap(pi.log_prob)(x))).all()
    np.testing.assert_allclose(pi.mode().sum(-1), 1.0, atol=1e-6)


def test_unsupported_space_raises_type_error():
    from dtwin_jax.envs.spaces import Discrete
    from dtwin_jax.learners.nets import ActionSpec

    with pytest.raises(TypeError, match="DQN accepts"):
        ActionSpec.from_space(Discrete(3, shape=(2,)), learner="DQN")

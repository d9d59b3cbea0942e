"""CQL penalty by hand and offline learning on a logged bandit; distillation into a small
student and its cost accounting."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.learners import cql, distill, dqn

PAYOFF = jnp.array([0.5, 1.0, 0.0, 0.2])


def _bandit_data(key, n=256):
    """Uniformly random arms of a one-step bandit paying ``PAYOFF`` plus noise."""
    k_a, k_r = jax.random.split(key)
    a = jax.random.randint(k_a, (n,), 0, 4)
    obs = jnp.ones((n, 2))
    r = PAYOFF[a] + 0.1 * jax.random.normal(k_r, (n,))
    return dqn.Transition(obs, a, r, obs, jnp.ones(n, bool), jnp.ones(n, bool))


def test_config_validation():
    with pytest.raises(ValueError, match="alpha"):
        cql.CQLConfig(alpha=-1.0)
    with pytest.raises(ValueError, match="real_fraction"):
        cql.CQLConfig(real_fraction=0.0)
    with pytest.raises(ValueError, match="loss"):
        distill.DistillConfig(loss="l2")
    with pytest.raises(TypeError, match="hidden_sizes"):
        distill.DistillConfig(hidden_sizes=(4, "4"))


def test_cql_penalty_by_hand():
    q = jnp.array([[0.0, 0.0], [np.log(3.0), 0.0]])
    np.testing.assert_allclose(cql.cql_penalty(q, jnp.array([0, 0])),
                               [np.log(2.0), np.log(4.0) - np.log(3.0)], rtol=1e-6)


@pytest.mark.parametrize("with_extra", [False, True])
def test_cql_learns_best_logged_arm(with_extra):
    cfg = cql.CQLConfig(num_steps=400, batch_size=32, lr=3e-3, hidden_sizes=(16,), alpha=0.5)
    data = _bandit_data(jax.random.PRNGKey(0))
    extra = _bandit_data(jax.random.PRNGKey(1), 64) if with_extra else None
    train = cql.make_train(2, 4, cfg)
    params, m = jax.jit(train)(jax.random.PRNGKey(2), data, extra)
    q = dqn.QNetwork(4, cfg.hidden_sizes).apply(params, jnp.ones((1, 2)))[0]
    assert int(jnp.argmax(q)) == 1, q
    assert m["loss"].shape == (400,) and np.isfinite(m["loss"]).all()


def test_distilled_student_agrees_with_teacher():
    teacher = dqn.QNetwork(5, (32, 32))
    t_params = teacher.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    states = jax.random.normal(jax.random.PRNGKey(1), (512, 3))
    cfg = distill.DistillConfig(hidden_sizes=(16, 16), num_steps=600, batch_size=64)
    d = distill.make_distill(teacher.apply, 3, 5, cfg)
    s_params, m = jax.jit(jax.vmap(d, (0, None, None)))(
        jax.random.split(jax.random.PRNGKey(2), 2), t_params, states)
    assert m["loss"].shape == (2, 600)
    student = distill.student_network(5, cfg)
    q_t = teacher.apply(t_params, states)
    for i in range(2):
        q_s = student.apply(jax.tree.map(lambda x, i=i: x[i], s_params), states)
        assert float(jnp.mean(jnp.argmax(q_s, -1) == jnp.argmax(q_t, -1))) > 0.7
        assert float(jnp.mean((q_s - q_t) ** 2)) < 0.5 * float(jnp.var(q_t))


def test_mlp_cost_by_hand():
    # 3 -> 4 -> 4 -> 36: weights 12 + 16 + 144, biases 4 + 4 + 36
    assert distill.mlp_cost(3, (4, 4), 36) == {"params": 216, "flops": 344}
    assert distill.mlp_cost(3, (), 2, dueling=True) == {"params": 12, "flops": 18}

"""DQN family: config validation, spaces, hand-computed double-Q and dueling values, learning on
probe envs and on a classic cart-pole within a CI-sized budget (several seeds under vmap)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import CartPoleEnv, CounterEnv, MaskedTeamEnv, MultiDiscreteBanditEnv

from dtwin_jax.learners import dqn


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="tau"):
        dqn.DQNConfig(tau=0.0)
    with pytest.raises(TypeError, match="double"):
        dqn.DQNConfig(double=1)
    with pytest.raises(ValueError, match="loss"):
        dqn.DQNConfig(loss="l1")
    with pytest.raises(TypeError, match="hidden_sizes"):
        dqn.DQNConfig(hidden_sizes=(8, 2.5))
    with pytest.raises(ValueError, match="buffer_size"):
        dqn.DQNConfig(num_envs=4, buffer_size=2)
    cfg = dqn.slicing_preset()
    assert cfg.lr == 1e-3 and cfg.hidden_sizes == (256, 256, 128, 128)


def test_refuses_other_spaces_naming_them():
    with pytest.raises(TypeError, match="MultiDiscrete"):
        dqn.make_train(MultiDiscreteBanditEnv(), None, dqn.DQNConfig())
    with pytest.raises(TypeError, match="multi-agent"):
        dqn.make_train(MaskedTeamEnv(), None, dqn.DQNConfig())


def test_td_targets_by_hand():
    q_online = jnp.array([[1.0, 5.0, 2.0], [0.0, -1.0, 3.0]])
    q_target = jnp.array([[4.0, 2.0, 7.0], [1.0, 6.0, 0.5]])
    reward = jnp.array([1.0, 0.5])
    term = jnp.array([False, True])
    plain = dqn.td_target(None, q_target, reward, term, 0.9, False)
    np.testing.assert_allclose(plain, [1.0 + 0.9 * 7.0, 0.5])
    # double: online argmax = (1, 2) -> target values (2.0, 0.5); second is terminal
    double = dqn.td_target(q_online, q_target, reward, term, 0.9, True)
    np.testing.assert_allclose(double, [1.0 + 0.9 * 2.0, 0.5])
    traced = jax.jit(lambda d: dqn.td_target(q_online, q_target, reward, term, 0.9, d))
    np.testing.assert_allclose(traced(True), double)
    np.testing.assert_allclose(traced(False), plain)


def _linear_head_params(net, dueling):
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 2)))
    head = "QHead_0"
    p = jax.tree.map(np.asarray, params)
    p["params"][head]["Dense_0"] = {"kernel": np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
                                    "bias": np.array([0.0, 0.0, 3.0])}
    if dueling:
        p["params"][head]["Dense_1"] = {"kernel": np.array([[1.0], [1.0]]),
                                        "bias": np.array([0.5])}
    return p


def test_dueling_and_loss_by_hand():
    x = jnp.array([[1.0, 2.0]])  # no hidden layer: the head sees x
    net = dqn.QNetwork(3, (), "relu", dueling=True)
    q = net.apply(_linear_head_params(net, True), x)
    # A = (1, 2, 3), V = 1 + 2 + 0.5 = 3.5, Q = V + A - mean(A) = (2.5, 3.5, 4.5)
    np.testing.assert_allclose(q, [[2.5, 3.5, 4.5]])
    plain = dqn.QNetwork(3, (), "relu")
    p = _linear_head_params(plain, False)
    np.testing.assert_allclose(plain.apply(p, x), [[1.0, 2.0, 3.0]])
    cfg = dqn.DQNConfig(gamma=0.5, loss="mse")
    batch = dqn.Transition(x, jnp.array([0]), jnp.array([1.0]), x, jnp.array([False]),
                           jnp.array([True]))
    loss, q_mean = dqn.make_loss(plain, cfg)(p, p, batch)
    # y = 1 + 0.5 * 3 = 2.5, Q(s, 0) = 1 -> 0.5 * 1.5^2
    np.testing.assert_allclose([loss, q_mean], [0.5 * 1.5**2, 1.0])


def test_switchable_network_picks_the_head():
    net = dqn.QNetwork(3, (8,), "relu", switchable=True)
    params = net.init(jax.random.PRNGKey(1), jnp.zeros((1, 2)), True)
    x = jnp.ones((2, 2))
    h = jax.nn.relu(x @ params["params"]["MLP_0"]["Dense_0"]["kernel"]
                    + params["params"]["MLP_0"]["Dense_0"]["bias"])
    plain_head = params["params"]["plain_head"]["Dense_0"]
    np.testing.assert_allclose(net.apply(params, x, False),
                               h @ plain_head["kernel"] + plain_head["bias"], rtol=1e-5)
    duel = params["params"]["dueling_head"]
    a = h @ duel["Dense_0"]["kernel"] + duel["Dense_0"]["bias"]
    v = h @ duel["Dense_1"]["kernel"] + duel["Dense_1"]["bias"]
    np.testing.assert_allclose(net.apply(params, x, True), v + a - a.mean(-1, keepdims=True),
                               rtol=1e-5, atol=1e-6)


def test_beats_random_on_counter_probe():
    cfg = dqn.DQNConfig(num_envs=4, total_timesteps=1600, buffer_size=1000, batch_size=32,
                        learning_starts=100, lr=1e-3, gamma=0.5, target_update_every=10,
                        hidden_sizes=(16,), double=True, dueling=True,
                        eps_decay_frac=0.3, info_keys=("total",))
    _, m = jax.jit(jax.vmap(dqn.make_train(CounterEnv(), None, cfg)))(
        jax.random.split(jax.random.PRNGKey(0), 2))
    ret = np.asarray(m["episode_return"])[:, -50:].mean(1)
    assert set(dqn.METRIC_NAMES) | {"total"} <= set(m)
    assert (ret > 4.5).all(), ret  # optimum 5, uniform random 5/3


def test_learns_cartpole_over_seeds():
    """Double DQN, Polyak target, 12k steps: every seed balances the pole (uniform random
    scores about 22 of the 200 possible)."""
    cfg = dqn.DQNConfig(num_envs=4, total_timesteps=12_000, buffer_size=10_000, batch_size=64,
                        learning_starts=500, lr=1e-3, gamma=0.99, tau=0.01,
                        target_update_every=1, eps_decay_frac=0.25, hidden_sizes=(64, 64),
                        double=True, loss="mse")
    _, m = jax.jit(jax.vmap(dqn.make_train(CartPoleEnv(), None, cfg)))(
        jax.random.split(jax.random.PRNGKey(0), 3))
    ret = np.asarray(m["episode_return"])
    assert (ret[:, -cfg.num_updates // 4:].mean(1) > 150).all(), ret[:, -10:]

"""VDN / IQL (dtwin_jax.learners.vdn): targets by hand, masks, probes, dnt-sync, seeds."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import struct

from dtwin_jax._params import CONCRETE
from dtwin_jax.envs.base import AgentObs, MultiAgentEnv
from dtwin_jax.envs.dnt_sync import DntSyncEnv
from dtwin_jax.envs.dnt_sync import policies as dnt_policies
from dtwin_jax.envs.spaces import Box, Discrete
from dtwin_jax.learners import vdn
from tests.probe_envs import BoxTargetEnv, MultiDiscreteBanditEnv

# ------------------------------------------------------------------ a cooperative matrix game


@struct.dataclass
class GameParams:
    horizon: int = 2


@struct.dataclass
class GameState:
    t: jax.Array


class MatrixGameEnv(MultiAgentEnv):
    """Two agents, ``Discrete(3)`` each; team reward 1 iff both play 1, else 0; agent 0's
    action 2 is masked (it would pay 5: a learner that ignores masks is drawn to it). Local
    rewards = the team reward. Episodes of ``horizon`` steps; obs = agent one-hot + t."""

    num_agents = 2
    name = "matrix-game"

    @property
    def default_params(self):
        return GameParams()

    def check_params(self, params, rules=CONCRETE):
        rules.array("horizon", params.horizon, (), 1, integer=True)

    def _obs(self, t, params):
        feats = jnp.concatenate([jnp.eye(2), jnp.full((2, 1), t / params.horizon)], -1)
        mask = jnp.array([[True, True, False], [True, True, True]])
        return AgentObs(feats.astype(jnp.float32), mask, jnp.ones(2, bool))

    def reset_env(self, key, params):
        return self._obs(0, params), GameState(jnp.int32(0))

    def step_env(self, key, state, action, params):
        team = jnp.where((action[0] == 1) & (action[1] == 1), 1.0,
                         jnp.where(action[0] == 2, 5.0, 0.0)).astype(jnp.float32)
        t = state.t + 1
        info = {"team_reward": team, "agent_mask": jnp.ones(2, bool),
                "illegal": (action[0] == 2).astype(jnp.float32)}
        return (self._obs(t, params), GameState(t), jnp.full(2, team), jnp.bool_(False),
                t >= params.horizon, info)

    def observation_space(self, params):
        return Box(0.0, 1.0, (3,))

    def action_space(self, params):
        return Discrete(3)


def _probe_config(**kw):
    base = dict(num_envs=4, num_steps=2, total_timesteps=4 * 2 * 60, buffer_size=64,
                batch_size=8, num_epochs=2, lr=3e-3, gamma=0.5, hidden_size=16,
                target_update_interval=2, eps_decay=0.5, info_keys=("illegal",))
    base.update(kw)
    return vdn.VDNConfig(**base)


def _greedy_team_reward(env, cfg, net_params, steps=4):
    act = vdn.make_act(cfg, env)
    params = env.default_params
    obs, state = env.reset(jax.random.PRNGKey(0), params)
    hidden, first, total = vdn.initial_hidden(cfg, env), jnp.bool_(True), 0.0
    for t in range(steps):
        action, hidden = act(net_params, obs, hidden, first, jax.random.PRNGKey(t))
        obs, state, _, term, trunc, info = env.step(jax.random.PRNGKey(100 + t), state, action,
                                                    params)
        first = term | trunc
        total += float(info["team_reward"])
    return total / steps


@pytest.mark.parametrize("mixer", ["vdn", "iql"])
def test_matrix_game_beats_random_and_respects_masks(mixer):
    env = MatrixGameEnv()
    cfg = _probe_config(mixer=mixer)
    state, metrics = jax.jit(vdn.make_train(env, None, cfg))(jax.random.PRNGKey(0))
    assert metrics["episode_return"].shape == (cfg.num_updates,)
    assert float(metrics["illegal"].max()) == 0.0  # epsilon-greedy never plays masked values
    # random legal play: P(a0 = 1) P(a1 = 1) = 1/2 * 1/3; greedy play after training: 1
    assert _greedy_team_reward(env, cfg, state.params) > 0.9
    assert np.isfinite(np.asarray(metrics["loss"])).all()


def test_factored_iql_bandit_masks_and_padded_agents():
    env = MultiDiscreteBanditEnv()
    cfg = _probe_config(mixer="iql", num_steps=1, total_timesteps=4 * 60, gamma=0.0)
    state, metrics = jax.jit(vdn.make_train(env, None, cfg))(jax.random.PRNGKey(1))
    assert float(metrics["illegal"].max()) == 0.0
    act = vdn.make_act(cfg, env)
    obs, _ = env.reset(jax.random.PRNGKey(0), env.default_params)
    action, _ = act(state.params, obs, vdn.initial_hidden(cfg, env), True, jax.random.PRNGKey(0))
    np.testing.assert_array_equal(np.asarray(action)[:2], [[1, 1], [1, 1]])  # best legal
    # the uniform legal policy earns 1 per live agent; the learnt greedy one 2
    assert float(metrics["reward"][-5:].mean()) > 1.5


def test_vdn_needs_team_reward_and_spaces_are_checked():
    with pytest.raises(ValueError, match="team_reward"):
        vdn.make_train(MultiDiscreteBanditEnv(), None, _probe_config(mixer="vdn", num_steps=1,
                                                                    info_keys=()))
    with pytest.raises(TypeError, match="Discrete"):
        vdn.make_train(BoxTargetEnv(), None, _probe_config(mixer="iql", info_keys=()))


@pytest.mark.parametrize("field, value, err", [
    ("mixer", "qmix", ValueError), ("gamma", 1.5, ValueError), ("num_envs", 2.0, TypeError),
    ("double_q", 1, TypeError), ("burn_in", 2, ValueError), ("info_keys", ("loss",), ValueError),
])
def test_config_validation_names_the_field(field, value, err):
    with pytest.raises(err, match=field if field != "info_keys" else "clashes"):
        _probe_config(**{field: value})


# ------------------------------------------------------------------ targets by hand
def test_double_q_and_vdn_targets_by_hand():
    # one step, two agents, two factors of two values
    q_on = jnp.array([[[1.0, 3.0], [2.0, 0.0]], [[5.0, 4.0], [0.0, 1.0]]])  # [A, F, n]
    q_tg = jnp.array([[[10.0, 20.0], [30.0, 40.0]], [[50.0, 60.0], [70.0, 80.0]]])
    mask = jnp.array([[[True, True], [True, True]], [[False, True], [True, True]]])
    term = jnp.array([False, False])
    reward = jnp.array([1.0, 2.0])
    boot, target = vdn.td_targets(reward, term, q_on, q_tg, mask, 0.5, double_q=True)
    # agent 0: online argmax (1, 0) -> Q_tgt = 20 + 30; agent 1: value 0 of factor 0 masked,
    # online argmax (1, 1) -> 60 + 80
    np.testing.assert_allclose(boot, [50.0, 140.0])
    np.testing.assert_allclose(target, [1 + 25.0, 2 + 70.0])
    boot_max, _ = vdn.td_targets(reward, term, q_on, q_tg, mask, 0.5, double_q=False)
    np.testing.assert_allclose(boot_max, [60.0, 140.0])  # target's own argmax: (1, 1) each
    _, target_t = vdn.td_targets(reward, jnp.array([True, False]), q_on, q_tg, mask, 0.5)
    np.testing.assert_allclose(target_t, [1.0, 72.0])
    live = jnp.array([True, False])
    y = vdn.vdn_targets(jnp.float32(3.0), term, live, q_on, q_tg, mask, 0.5)
    np.testing.assert_allclose(y, 3.0 + 0.5 * 50.0)  # dead agent 1 adds nothing
    np.testing.assert_allclose(vdn.chosen_q(q_on, jnp.array([[1, 0], [0, 1]])), [5.0, 6.0])


def test_epsilon_greedy_never_picks_masked_values():
    key = jax.random.PRNGKey(0)
    q = jax.random.normal(key, (500, 3, 4))
    mask = jax.random.bernoulli(jax.random.PRNGKey(1), 0.5, (500, 3, 4)).at[..., 2].set(True)
    for eps in (0.0, 0.5, 1.0):
        a = vdn.epsilon_greedy(jax.random.PRNGKey(2), q, mask, eps)
        assert bool(jnp.take_along_axis(mask, a[..., None], -1).all())
    a = vdn.epsilon_greedy(jax.random.PRNGKey(3), q, mask, 1.0)
    assert len(np.unique(np.asarray(a))) == 4  # random over the legal values, not greedy only


# ------------------------------------------------------------------ seeds under vmap
def test_seeds_vmap_matches_single_runs():
    env = MatrixGameEnv()
    cfg = _probe_config(mixer="vdn", total_timesteps=4 * 2 * 6)
    train = vdn.make_train(env, None, cfg)
    keys = jax.random.split(jax.random.PRNGKey(3), 2)
    _, batched = jax.jit(jax.vmap(train))(keys)
    _, single = jax.jit(train)(keys[1])
    assert batched["loss"].shape == (2, cfg.num_updates)
    np.testing.assert_allclose(batched["episode_return"][1], single["episode_return"],
                               rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ dnt-sync, small
def _dnt_eval(env, params, policy, steps=24):
    def body(carry, k):
        obs, state, hidden, first = carry
        k_a, k_s = jax.random.split(k)
        action, hidden = policy(k_a, obs, state, hidden, first)
        obs, state, _, term, trunc, info = env.step(k_s, state, action, params)
        return (obs, state, hidden, term | trunc), info["team_reward"]

    def one(key, hidden):
        obs, state = env.reset(key, params)
        return jax.lax.scan(body, (obs, state, hidden, jnp.bool_(True)),
                            jax.random.split(key, steps))[1].mean()

    return one


@pytest.fixture(scope="module")
def dnt_small():
    """A 2-BS, 3-user dnt-sync twin, the learner settings (``mixer`` set by the test) and ONE
    compiled evaluation for both mixers (the acting network does not depend on the mixer):
    ``score(net_params)``, the greedy policy's mean team reward per slot (24 slots from each of
    8 evaluation keys), and ``base``, the uniform legal policy's on the same keys."""
    env = DntSyncEnv(num_bs=2, num_users=3, num_rbs=3, action_form="factored",
                     predictor="persistence")
    params = env.default_params.replace(episode_length=jnp.int32(6), eps=jnp.float32(0.3))
    cfg = vdn.VDNConfig(num_envs=8, num_steps=6, total_timesteps=8 * 6 * 40, buffer_size=128,
                        batch_size=16, num_epochs=2, lr=1e-3, hidden_size=32,
                        target_update_interval=2)
    act = vdn.make_act(cfg, env, params)
    rand = dnt_policies.random_policy(env)
    keys = jax.random.split(jax.random.PRNGKey(7), 8)
    h0 = vdn.initial_hidden(cfg, env)

    @jax.jit
    def score(net_params):  # the network parameters are an argument: one compile
        learned = _dnt_eval(env, params, lambda k, o, s, h, f: act(net_params, o, h, f, k))
        return jax.vmap(learned, (0, None))(keys, h0).mean()

    randomly = _dnt_eval(env, params, lambda k, o, s, h, f: (rand(k, o, s, params), h))
    base = float(jax.jit(jax.vmap(randomly, (0, None)))(keys, h0).mean())
    return env, params, cfg, score, base


@pytest.mark.parametrize("mixer", ["vdn", "iql"])
def test_dnt_sync_small_beats_random(dnt_small, mixer):
    env, params, cfg, score, base = dnt_small
    cfg = dataclasses.replace(cfg, mixer=mixer)
    state, _ = jax.jit(vdn.make_train(env, params, cfg))(jax.random.PRNGKey(0))
    learned = float(score(state.params))
    assert learned > base + 0.5, (learned, base)

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from probe_envs import (
    AuditedTeamEnv,
    ConstantRewardEnv,
    CounterEnv,
    MaskedBanditEnv,
    TimeLimitEnv,
)

from dtwin_jax.envs.spaces import Discrete
from dtwin_jax.envs.wrappers import VecEnv
from dtwin_jax.learners.ppo import PPOConfig, compute_gae, make_policy_fn, make_train

SMALL = dict(num_envs=4, num_steps=16, lr=3e-3, hidden_sizes=(16, 16), num_minibatches=2)
HORIZONS = (2, 3, 4, 5)


def small_config(num_updates: int, **overrides) -> PPOConfig:
    kw = dict(SMALL, **overrides)
    return PPOConfig(total_timesteps=kw["num_envs"] * kw["num_steps"] * num_updates, **kw)


def value_fn(runner):
    ts = runner.train_state
    return lambda x: np.asarray(ts.apply_fn(ts.params, jnp.asarray(x, jnp.float32),
                                            method="value"))


@pytest.fixture(scope="module")
def counter_run():
    """CounterEnv twins with different horizons (batched params), trained once, run 3 times."""
    env = CounterEnv()
    params = VecEnv(env, 4).batch_params().replace(horizon=jnp.array(HORIZONS))
    config = small_config(40)
    train_fn = make_train(env, params, config, batched_params=True)
    chex.clear_trace_counter()
    train = jax.jit(chex.assert_max_traces(train_fn, n=1))
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    runs = [train(keys[0]), train(keys[0]), train(keys[1])]  # a second trace would raise
    return dict(env=env, config=config, train_fn=train_fn, keys=keys, runs=runs)


def test_counter_learns_goal_in_heterogeneous_twins(counter_run):
    runner, metrics = counter_run["runs"][0]
    act = make_policy_fn(counter_run["config"], counter_run["env"])
    for t in range(5):
        obs = jnp.array([t / 5.0])
        assert int(act(runner.train_state.params, obs, jax.random.PRNGKey(t), True)) == 1
    assert float(metrics["reward"][-1]) > 0.95 and float(metrics["reward"][0]) < 0.6
    # final update: steps 16u+1 .. 16u+16; twin with horizon H completes an episode (return H
    # once the policy is greedy-correct) at every multiple of H
    u = counter_run["config"].num_updates - 1
    done = {h: sum(1 for k in range(16 * u + 1, 16 * u + 17) if k % h == 0) for h in HORIZONS}
    expected = sum(h * n for h, n in done.items()) / sum(done.values())
    assert float(metrics["episodes"][-1]) == sum(done.values())
    assert float(metrics["episode_return"][-1]) == pytest.approx(expected, abs=0.3)
    assert abs(expected - 5.0) > 1.0  # broadcasting one horizon to all twins would fail


def test_same_key_gives_identical_metrics_and_train_traces_once(counter_run):
    (_, m0), (_, m0_again), (_, m1) = counter_run["runs"]
    chex.assert_trees_all_equal(m0, m0_again)
    assert not np.array_equal(m0["total_loss"], m1["total_loss"])
    for name, values in m0.items():
        assert values.shape == (counter_run["config"].num_updates,), name
        finite = values[1:] if name == "episode_return" else values  # NaN until an episode ends
        assert np.isfinite(np.asarray(finite)).all(), name


def test_vmap_over_seeds_matches_single_runs(counter_run):
    _, metrics = jax.jit(jax.vmap(counter_run["train_fn"]))(counter_run["keys"])
    for seed in range(2):
        single = counter_run["runs"][2 * seed][1]
        for name in ("reward", "episodes", "entropy", "value_loss"):
            np.testing.assert_allclose(metrics[name][seed], single[name], rtol=1e-3, atol=1e-4,
                                       err_msg=name)


def test_value_converges_to_discounted_return_on_termination(capsys):
    env, gamma = ConstantRewardEnv(), 0.9
    horizon = env.default_params.horizon
    train = jax.jit(make_train(env, None, small_config(80, gamma=gamma), progress=True))
    runner, metrics = train(jax.random.PRNGKey(3))
    jax.block_until_ready(metrics)
    ts = np.arange(horizon)
    values = value_fn(runner)(ts[:, None] / horizon)
    np.testing.assert_allclose(values, (1 - gamma ** (horizon - ts)) / (1 - gamma), rtol=0.05)
    np.testing.assert_allclose(metrics["reward"], 1.0)
    np.testing.assert_allclose(metrics["episode_return"], float(horizon))
    err = capsys.readouterr().err
    assert "PPO ConstantRewardEnv" in err and "80/80" in err


def test_truncation_bootstraps_from_final_observation():
    # V(1) = 1 / (1 - gamma) = 2 and V(0) = 1 for gamma = 0.5. Treating the time limit as a
    # termination would give V(1) = 1; bootstrapping from the reset obs would give V(1) = 4/3.
    train = jax.jit(make_train(TimeLimitEnv(), None, small_config(80, gamma=0.5)))
    runner, _ = train(jax.random.PRNGKey(4))
    np.testing.assert_allclose(value_fn(runner)([[0.0], [1.0]]), [1.0, 2.0], atol=0.08)


def test_masked_best_arm_is_never_sampled():
    env = MaskedBanditEnv()
    config = small_config(30, info_keys=("illegal",))
    runner, metrics = jax.jit(make_train(env, None, config))(jax.random.PRNGKey(5))
    np.testing.assert_array_equal(metrics["illegal"], 0.0)
    assert float(metrics["reward"][-1]) > 0.45  # learned arm 0 (0.5) over arm 2 (0.0)
    act = jax.jit(make_policy_fn(config, env), static_argnums=3)
    obs, _ = env.reset(jax.random.PRNGKey(0))
    params = runner.train_state.params
    draws = jax.vmap(lambda k: act(params, obs, k, False))(jax.random.split(jax.random.PRNGKey(0),
                                                                            2000))
    assert not (np.asarray(draws) == 1).any()
    assert int(act(params, obs, jax.random.PRNGKey(0), True)[0]) == 0


def test_padded_agent_has_no_effect_and_illegal_action_never_chosen():
    config = small_config(25, info_keys=("illegal",))
    results = [
        jax.jit(make_train(AuditedTeamEnv(garbage), None, config))(jax.random.PRNGKey(6))
        for garbage in (False, True)
    ]
    (clean_runner, clean), (garbage_runner, garbage) = results
    for name in clean:
        np.testing.assert_allclose(garbage[name], clean[name], rtol=1e-5, atol=1e-6,
                                   err_msg=name)
    chex.assert_trees_all_close(garbage_runner.train_state.params,
                                clean_runner.train_state.params, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(clean["illegal"], 0.0)
    assert float(clean["reward"][-1]) > 0.95  # the three live agents learned action 1
    assert float(clean["episode_return"][-1]) > 4.7  # per-agent return over horizon 5


def _gae_reference(values, rewards, next_values, terminated, done, gamma, lam):
    adv = np.zeros_like(values)
    running = np.zeros_like(values[0])
    for t in reversed(range(len(values))):
        delta = rewards[t] + gamma * (1 - terminated[t]) * next_values[t] - values[t]
        running = delta + gamma * lam * (1 - done[t]) * running
        adv[t] = running
    return adv, adv + values


def test_compute_gae_matches_numpy_reference():
    rng = np.random.default_rng(0)
    shape = (12, 3, 2)
    values, rewards, next_values = (rng.normal(size=shape).astype(np.float32) for _ in range(3))
    terminated = rng.random(shape) < 0.2
    done = terminated | (rng.random(shape) < 0.2)
    adv, targets = compute_gae(jnp.asarray(values), jnp.asarray(rewards), jnp.asarray(next_values),
                               jnp.asarray(terminated), jnp.asarray(done), 0.97, 0.9)
    ref_adv, ref_targets = _gae_reference(values, rewards, next_values, terminated, done, 0.97,
                                          0.9)
    np.testing.assert_allclose(adv, ref_adv, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(targets, ref_targets, rtol=1e-5, atol=1e-5)
    # lambda = 1, no episode end, zero values: advantage = discounted reward-to-go + bootstrap
    r = np.ones(4, np.float32)
    nv = np.zeros(4, np.float32)
    nv[-1] = 10.0
    adv, _ = compute_gae(jnp.zeros(4), jnp.asarray(r), jnp.asarray(nv), jnp.zeros(4, bool),
                         jnp.zeros(4, bool), 0.5, 1.0)
    np.testing.assert_allclose(adv, [1 + 0.5 + 0.25 + 0.125 + 0.0625 * 10,
                                     1 + 0.5 + 0.25 + 0.125 * 10, 1 + 0.5 + 0.25 * 10,
                                     1 + 0.5 * 10], rtol=1e-6)


@pytest.mark.parametrize(
    "overrides, error, field",
    [
        (dict(num_envs=0), ValueError, "num_envs"),
        (dict(num_steps=2.5), TypeError, "num_steps"),
        (dict(total_timesteps=10), ValueError, "total_timesteps"),
        (dict(num_minibatches=3), ValueError, "num_minibatches"),
        (dict(lr=0.0), ValueError, "lr"),
        (dict(gamma=1.5), ValueError, "gamma"),
        (dict(gae_lambda=-0.1), ValueError, "gae_lambda"),
        (dict(clip_eps=0.0), ValueError, "clip_eps"),
        (dict(ent_coef=-1.0), ValueError, "ent_coef"),
        (dict(max_grad_norm=float("nan")), ValueError, "max_grad_norm"),
        (dict(hidden_sizes=(16, 0)), ValueError, "hidden_sizes"),
        (dict(activation="softmax"), ValueError, "activation"),
        (dict(anneal_lr=1), TypeError, "anneal_lr"),
        (dict(info_keys=("reward",)), ValueError, "info_keys"),
    ],
)
def test_bad_config_raises(overrides, error, field):
    kw = dict(dict(num_envs=4, num_steps=8, total_timesteps=64), **overrides)
    with pytest.raises(error, match=field):
        PPOConfig(**kw)


def test_make_train_rejects_bad_inputs_before_tracing():
    config = small_config(2, info_keys=("nope",))
    with pytest.raises(ValueError, match="nope"):
        make_train(CounterEnv(), None, config)
    wrong_batch = VecEnv(CounterEnv(), 3).batch_params()
    with pytest.raises(ValueError, match="num_envs=4"):
        make_train(CounterEnv(), wrong_batch, small_config(2), batched_params=True)

    class VectorDiscreteEnv(CounterEnv):
        def action_space(self, params):
            return Discrete(3, shape=(2,))

    with pytest.raises(TypeError, match="PPO accepts.*MultiDiscrete, Box or Simplex"):
        make_train(VectorDiscreteEnv(), None, small_config(2))
    assert PPOConfig(num_envs=2, num_steps=8, total_timesteps=100).num_updates == 6


def test_vecenv_reset_stays_a_cond_under_vmap_over_seeds():
    """Seeds with different episode ends: ``done.any()`` would be batched and turn the reset's
    ``lax.cond`` into a ``select`` (reset computed every step); ``any_in_batch`` keeps it."""
    vec = VecEnv(CounterEnv(), 2)

    def run(key, horizon):
        params = vec.batch_params().replace(horizon=jnp.broadcast_to(horizon, (2,)))
        obs, state = vec.reset(key, params)

        def body(carry, k):
            obs, state, reward, *_ = vec.step(k, carry, jnp.ones(2, jnp.int32), params)
            return state, reward

        return jax.lax.scan(body, state, jax.random.split(key, 6))[1]

    keys, horizons = jax.random.split(jax.random.PRNGKey(0), 2), jnp.array([2, 3])
    assert "cond[" in str(jax.make_jaxpr(jax.vmap(run))(keys, horizons))
    rewards = jax.jit(jax.vmap(run))(keys, horizons)
    np.testing.assert_array_equal(rewards, 1.0)

"""Gymnasium adapters: check_env on every registered env, the vector env against the single
env stepped with the same keys, spaces, masks, errors, and the core importing no Gymnasium."""

import os
import subprocess
import sys

import numpy as np
import pytest

gymnasium = pytest.importorskip("gymnasium")

from gymnasium.utils.env_checker import check_env  # noqa: E402

import dtwin_jax  # noqa: E402  (registers the Gymnasium ids)
from dtwin_jax.envs.wrappers import gymnasium as gw  # noqa: E402

#: env id -> (small constructor kwargs, params overrides)
SMALL = {
    "association-v0": (
        dict(num_bs=4, num_macro=1, max_users=6, num_candidates=3, mobility="waypoint",
             area_m=200.0, shadow_cell_m=20.0),
        dict(num_users=5, episode_length=4),
    ),
    "dnt-sync-v0": (dict(num_users=4, num_rbs=4, predictor="persistence"),
                    dict(episode_length=4)),
    "edge-retrain-v0": (dict(num_users=4, full_steps=20, full_samples=32, retraining="real_only"),
                        dict(episode_length=4, frame_length=2)),
    "slicing-v0": (dict(num_users=10, num_slots=20), dict(episode_length=4)),
}
IDS = [i for i in dtwin_jax.registered_envs() if not i.startswith("counter-test")]


def _make(env_id, **kw):
    kwargs, overrides = SMALL[env_id]
    return gymnasium.make(f"dtwin_jax/{env_id}", params=overrides, **kwargs, **kw)


def test_every_registered_env_is_registered_with_gymnasium():
    assert set(gw.register_envs()) == {f"dtwin_jax/{i}" for i in dtwin_jax.registered_envs()}
    for env_id in IDS:
        assert f"dtwin_jax/{env_id}" in gymnasium.registry


@pytest.mark.parametrize("env_id", IDS)
def test_check_env_and_episode(env_id):
    env = _make(env_id)
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=3)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    if isinstance(env.action_space, gymnasium.spaces.Discrete):
        assert info["action_mask"].shape == (env.action_space.n,)
    steps, done = 0, False
    while not done:
        mask = info.get("action_mask")
        if isinstance(env.action_space, gymnasium.spaces.Discrete):
            action = env.action_space.sample(mask=mask.astype(np.int8))
        else:
            action = env.action_space.sample()
        obs, reward, terminated, truncated, info = env.step(action)
        assert obs in env.observation_space and isinstance(reward, float)
        done, steps = terminated or truncated, steps + 1
    assert steps == 4  # episode_length; the env's truncation ends the episode
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(action)
    env.reset()  # the twin's next episode
    env.close()


def test_reset_seeds_and_next_episode():
    env = _make("association-v0").unwrapped
    a, _ = env.reset(seed=7)
    b, _ = env.reset(seed=7)
    c, _ = env.reset(seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    env.reset(seed=7)
    d, _ = env.reset()  # reset_from of the seeded twin: deterministic
    env.reset(seed=7)
    e, _ = env.reset()
    np.testing.assert_array_equal(d, e)


def test_single_agent_view_of_multi_agent_env():
    env = _make("association-v0", agent=2, others="max_sinr").unwrapped
    obs, info = env.reset(seed=0)
    assert obs.shape == env.observation_space.shape and info["agent_active"]
    assert env.action_masks().shape == (3,) and env.action_masks().dtype == bool
    _, _, _, _, info = env.step(int(np.argmax(info["action_mask"])))
    assert info["throughput"].shape == (6,)  # the env's per-agent info keeps its agent axis

    dnt = _make("dnt-sync-v0", reward="team", others="nearest_bs").unwrapped
    dnt.reset(seed=0)
    _, reward, _, _, info = dnt.step(0)
    assert reward == pytest.approx(float(info["team_reward"]))


def test_argument_errors_name_the_field():
    kwargs, _ = SMALL["association-v0"]
    with pytest.raises(ValueError, match="agent"):
        gw.GymnasiumEnv("association-v0", agent=6, **kwargs)
    with pytest.raises(ValueError, match="reward"):
        gw.GymnasiumEnv("association-v0", reward="team", **kwargs)
    with pytest.raises(ValueError, match="others"):
        gw.GymnasiumEnv("association-v0", others="nope", **kwargs)
    with pytest.raises(ValueError, match="others"):
        gw.GymnasiumEnv("slicing-v0", others="max_sinr", num_users=10, num_slots=20)
    with pytest.raises(ValueError, match="render_mode"):
        gw.GymnasiumEnv("slicing-v0", render_mode="human")
    with pytest.raises(ValueError, match="episode_length"):
        gw.GymnasiumEnv("slicing-v0", params=dict(episode_length=0))
    env = gw.GymnasiumEnv("slicing-v0", num_users=10, num_slots=20)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(TypeError, match="action"):
        env.step(1.5)
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(2, np.int64))
    with pytest.raises(ValueError, match="seed"):
        env.reset(seed=-1)


def test_space_conversion():
    from dtwin_jax.envs import spaces as s

    assert gw.to_gymnasium_space(s.Discrete(5)) == gymnasium.spaces.Discrete(5)
    md = gw.to_gymnasium_space(s.MultiDiscrete((2, 3)))
    np.testing.assert_array_equal(md.nvec, [2, 3])
    box = gw.to_gymnasium_space(s.Box(-1.0, np.asarray([1.0, 2.0]), (2,)))
    np.testing.assert_array_equal(box.high, [1.0, 2.0])
    assert box.dtype == np.float32
    simplex = gw.to_gymnasium_space(s.Simplex(3))
    assert simplex.shape == (3,) and simplex.low.min() == 0 and simplex.high.max() == 1
    mask = np.asarray([[True, True, False], [False, True, True]])
    np.testing.assert_array_equal(
        gw.flat_action_mask(s.MultiDiscrete((2, 3)), mask), [True, True, False, True, True])


@pytest.mark.parametrize("env_id", ["association-v0", "slicing-v0"])
def test_vector_env_matches_single_env_with_same_keys(env_id):
    """Sub-env i of the vector env = the single env seeded with seed + i and reset() after
    each episode end: the vector run is recorded, then replayed by ONE single env (one
    compilation) sub-env by sub-env."""
    kwargs, overrides = SMALL[env_id]
    n, seed, steps = 3, 11, 6  # episodes of 4 steps: the autoreset happens inside
    vec = gymnasium.make_vec(f"dtwin_jax/{env_id}", num_envs=n, params=overrides, **kwargs)
    assert isinstance(vec, gw.GymnasiumVectorEnv)
    assert vec.metadata["autoreset_mode"] == gymnasium.vector.AutoresetMode.SAME_STEP
    obs, info = vec.reset(seed=seed)
    assert obs.shape == (n, *vec.single_observation_space.shape) and obs.dtype == np.float32
    rng = np.random.default_rng(0)
    record = [(obs, None, None, None, info, None)]
    for t in range(steps):
        actions = np.stack([
            rng.choice(np.flatnonzero(info["action_mask"][i])) for i in range(n)])
        obs, reward, terminated, truncated, info = vec.step(actions)
        assert reward.shape == (n,) and reward.dtype == np.float64
        assert terminated.dtype == bool and truncated.dtype == bool
        assert ("final_obs" in info) == (t == 3) and truncated.all() == (t == 3)
        record.append((obs, reward, terminated, truncated, info, actions))
    vec.close()

    def close(a, b):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)  # vmap may fuse differently

    env = gw.GymnasiumEnv(env_id, params=overrides, **kwargs)
    for i in range(n):
        o, inf = env.reset(seed=seed + i)
        close(record[0][0][i], o)
        for obs, reward, terminated, truncated, info, actions in record[1:]:
            o, r, term, trunc, inf = env.step(actions[i])
            assert (term, trunc) == (terminated[i], truncated[i])
            close(reward[i], r)
            if term or trunc:
                close(info["final_obs"][i], o)
                field = next(k for k in info["final_info"] if not k.startswith("_"))
                assert info["_final_obs"][i] and info["final_info"][f"_{field}"][i]
                o, inf = env.reset()
            close(obs[i], o)
            np.testing.assert_array_equal(info["action_mask"][i], inf["action_mask"])


def test_vector_env_seed_list_and_errors():
    kwargs, overrides = SMALL["dnt-sync-v0"]
    vec = gw.GymnasiumVectorEnv("dnt-sync-v0", 2, params=overrides, **kwargs)
    a, _ = vec.reset(seed=[5, 9])
    b, _ = vec.reset(seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    assert vec.action_space.shape == (2,)
    with pytest.raises(ValueError, match="actions"):
        vec.step(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="seed"):
        vec.reset(seed=[1])
    _, reward, *_ = vec.step(np.zeros(2, np.int64))
    assert reward.shape == (2,)


def test_core_imports_neither_gymnasium_nor_pettingzoo():
    """``import dtwin_jax`` with both blocked works and imports neither; with them
    installed, it imports Gymnasium (to register) but not PettingZoo."""
    blocked = ("import sys; sys.modules['gymnasium'] = None; sys.modules['pettingzoo'] = None;"
               "import dtwin_jax; env = dtwin_jax.make('slicing-v0');"
               "bad = [m for m in sys.modules if m.split('.')[0] in ('gymnasium', 'pettingzoo')"
               " and sys.modules[m] is not None]; assert not bad, bad; print('ok')")
    free = ("import sys, dtwin_jax; assert 'gymnasium' in sys.modules;"
            "assert 'pettingzoo' not in sys.modules; print('ok')")
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for code in (blocked, free):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=120, env=env)
        assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def test_sb3_example_runs_tiny():
    """``examples/sb3_ppo.py --tiny`` trains and evaluates (skipped without SB3)."""
    pytest.importorskip("stable_baselines3")
    script = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "sb3_ppo.py")
    out = subprocess.run([sys.executable, script, "--tiny", "--episodes", "2"],
                         capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 0, out.stderr
    assert "mean return" in out.stdout

"""PettingZoo adapter: parallel_api_test on every registered multi-agent env (with users
leaving and arriving in association-v0), names, masks, dead-agent rules and errors."""

import numpy as np
import pytest

pytest.importorskip("gymnasium")
pytest.importorskip("pettingzoo")

from pettingzoo.test import parallel_api_test  # noqa: E402

from dtwin_jax.envs.wrappers.pettingzoo import DtwinParallelEnv, all_parallel_envs  # noqa: E402

#: env id -> (small constructor kwargs, params overrides)
SMALL = {
    "association-v0": (
        dict(num_bs=4, num_macro=1, max_users=6, num_candidates=3, mobility="waypoint",
             area_m=200.0, shadow_cell_m=20.0),
        dict(num_users=4, episode_length=6, churn=0.3),
    ),
    "dnt-sync-v0": (dict(num_users=4, num_rbs=4, predictor="persistence"),
                    dict(episode_length=4)),
}


def _make(env_id):
    kwargs, overrides = SMALL[env_id]
    return all_parallel_envs()[env_id](params=overrides, **kwargs)


def test_all_parallel_envs_lists_the_multi_agent_envs():
    envs = all_parallel_envs()
    assert "slicing-v0" not in envs
    assert set(SMALL) <= set(envs)


@pytest.mark.parametrize("env_id", sorted(SMALL))
def test_parallel_api(env_id):
    env = _make(env_id)
    parallel_api_test(env, num_cycles=12)
    prefix = "user" if env_id == "association-v0" else "bs"
    assert env.possible_agents[1] == f"{prefix}_1"
    assert env.action_space(env.possible_agents[0]) is not env.action_space(
        env.possible_agents[1])


def test_dead_agents_leave_and_are_not_revived():
    env = _make("association-v0")
    obs, infos = env.reset(seed=1)
    assert len(env.agents) == 4  # num_users of 6 slots are active at the start
    assert all(o.dtype == np.float32 for o in obs.values())
    finished, seen_left = set(), False
    while env.agents:
        actions = {a: int(np.flatnonzero(infos[a]["action_mask"])[0]) for a in env.agents}
        acting = set(env.agents)
        obs, rewards, terms, truncs, infos = env.step(actions)
        assert acting <= set(obs)
        for a in acting:
            if terms[a]:
                finished.add(a)
                seen_left = True
                assert a not in env.agents
        assert not finished & set(env.agents)
    assert seen_left  # churn 0.3 over 6 steps
    with pytest.raises(RuntimeError, match="reset"):
        env.step({})


def test_team_reward_actions_and_errors():
    env = _make("dnt-sync-v0")
    env.reset(seed=0)
    _, rewards, _, _, infos = env.step({"bs_0": 1})  # the others fall back to random
    assert set(rewards) == {"bs_0", "bs_1", "bs_2"}
    assert infos["bs_0"]["team_reward"] == infos["bs_2"]["team_reward"]
    with pytest.raises(ValueError, match="agent"):
        env.step({"user_9": 0})
    with pytest.raises(TypeError, match="bs_1"):
        env.step({"bs_1": 0.5})
    with pytest.raises(ValueError, match="single-agent"):
        DtwinParallelEnv("slicing-v0", num_users=10, num_slots=20)

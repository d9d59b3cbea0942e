"""Diffusion-generated mobility inside the compiled loops: on every reset (and only then) each
twin samples ``refresh`` fresh trajectories into its bank (continuing the ring over episodes)
and redraws its users."""

import jax
import jax.numpy as jnp
import numpy as np

from dtwin_jax.envs.association import AssociationEnv
from dtwin_jax.envs.testing import random_action
from dtwin_jax.envs.wrappers import VecEnv
from dtwin_jax.learners.ppo import PPOConfig, make_train
from dtwin_jax.mobility import generated
from dtwin_jax.mobility.generated import GeneratedMobility
from dtwin_jax.twins.map2traj.diffusion import DiffusionConfig
from dtwin_jax.twins.map2traj.unet import UNetConfig

SMALL_NET = DiffusionConfig(
    unet=UNetConfig(length=8, channels=(8, 8), blocks=1, emb_dim=8, cond_dim=8,
                    map_channels=(4,), blur_sigmas=(1.0,), groups=4),
    timesteps=20,
)
USERS, BANK, REFRESH, EPISODE, TWINS = 6, 9, 2, 4, 2


def _env_and_params():
    mobility = GeneratedMobility(USERS, SMALL_NET, (8, 8, 2), num_steps=2, bank_size=BANK,
                                 refresh=REFRESH)
    shapes = mobility.default_params.net
    rng = np.random.default_rng(0)
    net = jax.tree.map(lambda s: jnp.asarray(0.3 * rng.normal(size=s.shape), s.dtype), shapes)
    mob_params = mobility.make_params(net=net, raster=rng.uniform(size=(8, 8, 2)),
                                      area_min=[0.0, 0.0], area_max=[300.0, 300.0],
                                      bank=rng.uniform(0.0, 300.0, size=(BANK, 8, 2)))
    env = AssociationEnv(num_bs=4, num_macro=1, max_users=USERS, num_candidates=2,
                         mobility=mobility, area_m=300.0, shadow_cell_m=30.0)
    params = env.default_params.replace(mobility=mob_params, num_users=jnp.int32(USERS),
                                        episode_length=jnp.int32(EPISODE))
    return env, params


def test_twins_sample_fresh_trajectories_exactly_when_they_reset(monkeypatch):
    sampled = []  # number of trajectories of each sampler call that actually ran

    def counting_sampler(*args, **kwargs):
        out = generated_sampler(*args, **kwargs)
        jax.debug.callback(lambda x: sampled.append(np.size(x)), out[:, 0, 0])
        return out

    generated_sampler = generated.sample_trajectories
    monkeypatch.setattr(generated, "sample_trajectories", counting_sampler)
    env, params = _env_and_params()
    vec = VecEnv(env, TWINS)
    batch = vec.batch_params(params)

    @jax.jit
    def run(key):
        obs, state = vec.reset(key, batch)

        def body(carry, k):
            obs, state = carry
            ka, ks = jax.random.split(k)
            act = jax.vmap(lambda kk, o: random_action(env, kk, o, params))(
                jax.random.split(ka, TWINS), obs)
            obs, state, _, term, trunc, _ = vec.step(ks, state, act, batch)
            return (obs, state), (state.mobility, term | trunc)

        (_, _), (mobs, done) = jax.lax.scan(body, (obs, state), jax.random.split(key, 3 * EPISODE))
        return state.mobility, mobs, done

    first, mobs, done = jax.block_until_ready(run(jax.random.PRNGKey(0)))
    done = np.asarray(done)
    assert done.sum() == TWINS * 3  # every twin reset once per episode
    # the sampler ran at the first reset and on the 3 steps where twins reset, never otherwise
    assert sum(sampled) == TWINS * REFRESH * (1 + 3)
    trajs = np.concatenate([np.asarray(first.traj)[None], np.asarray(mobs.traj)])
    banks = np.concatenate([np.asarray(first.bank)[None], np.asarray(mobs.bank)])
    changed = np.any(trajs[1:] != trajs[:-1], axis=(2, 3, 4))  # [T, twins]
    np.testing.assert_array_equal(changed, done)
    # auto-resets continue the ring: after e resets a twin's bank holds R * (1 + e) fresh rows
    fresh = np.any(banks != np.asarray(params.mobility.bank), axis=(3, 4))  # [T + 1, twins, P]
    resets = np.concatenate([np.zeros((1, TWINS), int), np.cumsum(done, axis=0)])
    np.testing.assert_array_equal(fresh.sum(-1), np.minimum(REFRESH * (1 + resets), BANK))
    assert np.all(np.isfinite(trajs)) and np.all(np.isfinite(banks))
    assert trajs.min() >= 0.0 and trajs.max() <= 300.0


def test_ppo_trains_with_generated_mobility_in_one_jitted_program():
    env, params = _env_and_params()
    config = PPOConfig(num_envs=TWINS, num_steps=EPISODE * 2,
                       total_timesteps=EPISODE * 2 * TWINS * 2, num_minibatches=2,
                       update_epochs=1, hidden_sizes=(16,), info_keys=("cell_edge",))
    runner, metrics = jax.jit(make_train(env, params, config))(jax.random.PRNGKey(1))
    assert metrics["episodes"].shape == (2,)
    assert float(metrics["episodes"].sum()) >= 4  # two resets per twin happened inside the scan
    for name, values in metrics.items():
        assert np.all(np.isfinite(np.asarray(values))), name

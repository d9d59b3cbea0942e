"""``edge-retrain-v0`` dynamics: delay bookkeeping, the two timescales, drift and retraining.

One small system (4 users), one compiled rollout shared by every test: the arms compared here
differ only in params (frame length, accuracy threshold, shift slot), never in static sizes.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dtwin_jax.envs.edge_retrain import EdgeRetrainEnv, physics
from dtwin_jax.envs.edge_retrain.policies import balanced

T = 40


@pytest.fixture(scope="module")
def env():
    return EdgeRetrainEnv(num_users=4, full_steps=60, full_samples=128)


@pytest.fixture(scope="module")
def rollout(env):
    policy = balanced(env)

    def run(params, seed):
        k_reset, k_run = jax.random.split(jax.random.key(seed))
        obs, state = env.reset(k_reset, params)

        def body(carry, k):
            obs, state = carry
            action = policy(None, obs, state, params)
            rate = env.rates(state, params)
            obs, state, reward, _, trunc, info = env.step(k, state, action, params)
            return (obs, state), dict(info, reward=reward, rate=rate, action=action,
                                      truncated=trunc)

        return jax.lax.scan(body, (obs, state), jax.random.split(k_run, T))[1]

    fn = jax.jit(jax.vmap(run, (None, 0)))
    seeds = jnp.arange(4)
    return lambda params: jax.tree.map(np.asarray, fn(params, seeds))


def test_delay_is_inference_plus_overhead_and_overhead_only_at_frame_starts(env, rollout):
    params = env.make_params(frame_length=5, episode_length=20)
    out = rollout(params)
    np.testing.assert_allclose(out["delay"], (out["inference_delay"] + out["overhead"]).mean(-1),
                               rtol=1e-5)
    np.testing.assert_allclose(out["reward"], -out["delay"] / 0.1, rtol=1e-5)
    starts = (np.arange(T) % 20) % 5 == 0
    np.testing.assert_array_equal(out["frame_start"], np.broadcast_to(starts, (4, T)))
    assert (out["overhead"][:, ~starts] == 0).all()
    # every frame start charges at least the probe upload
    probe = 8 * float(params.bits_per_sample) / out["rate"][:, starts]
    assert (out["overhead"][:, starts] >= probe * (1 - 1e-4)).all()
    assert out["truncated"][:, 19].all() and out["truncated"].sum() == 4 * (T // 20)
    assert np.isfinite(out["delay"]).all() and (out["delay"] > 0).all()


def test_balanced_split_equalises_local_and_offloaded_time(env, rollout):
    """Within a frame the balanced policy's inference delay is its local time ``(1 - x) l``
    (= its offloaded time). At a frame's first slot the policy decided on the previous
    frame's association, so users moved to another BS are no longer balanced."""
    params = env.make_params(frame_length=5)
    out = rollout(params)
    local = float(params.samples_per_slot * params.infer_flops / params.local_flops)
    inside = ~out["frame_start"]
    x = out["action"][..., 0][inside]
    np.testing.assert_allclose(out["inference_delay"][inside], (1 - x) * local, rtol=1e-4)


def test_single_timescale_pays_the_frame_overhead_every_slot(env, rollout):
    one = rollout(env.make_params(frame_length=1))
    ten = rollout(env.make_params(frame_length=10))
    assert one["frame_start"].all()
    assert (one["overhead"] > 0).all()
    assert one["delay"].mean() > ten["delay"].mean()


def test_retraining_keeps_accuracy_above_never_retraining(env, rollout):
    """Users move between areas whose data differ: without retraining (threshold 0) the
    models' true accuracy falls; the twin-triggered incremental retraining recovers it."""
    never = rollout(env.make_params(frame_length=5, acc_threshold=0.0))
    twin = rollout(env.make_params(frame_length=5))
    assert never["retrained"].sum() == 0
    assert twin["retrained"].sum() > 0
    assert twin["accuracy"].mean() > never["accuracy"].mean() + 0.05
    # retraining happens exactly where the twin predicted an accuracy below the threshold
    pred = twin["predicted_acc"][twin["frame_start"]]
    np.testing.assert_array_equal(twin["retrained"][twin["frame_start"]], pred < 0.85)


def test_sudden_shift_drops_accuracy_and_retraining_recovers(env, rollout):
    """The shift lands inside a frame (slot 12 of frames of 5): accuracy drops for the rest of
    that frame, and the next frame's retraining restores it."""
    shift = 12
    params = env.make_params(frame_length=5, shift_slot=shift, episode_length=T)
    out = rollout(params)
    acc = out["accuracy"].mean(axis=(0, 2))  # [T] over seeds and users
    before, after, late = acc[5:shift].mean(), acc[shift:15].mean(), acc[15:25].mean()
    assert after < before - 0.15
    assert late > after + 0.1


def test_association_respects_the_capacity(env, rollout):
    params = env.make_params(frame_length=5, max_users_per_bs=2)
    out = rollout(params)
    for m in range(env.num_bs):
        assert ((out["assoc"] == m).sum(-1) <= 2).all()


def test_bad_params_name_the_field(env):
    with pytest.raises(ValueError, match="acc_threshold"):
        env.make_params(acc_threshold=1.5)
    with pytest.raises(ValueError, match="max_users_per_bs"):
        env.make_params(max_users_per_bs=1)  # 3 BSs x 1 < 4 users
    with pytest.raises(ValueError, match="retraining"):
        EdgeRetrainEnv(retraining="sometimes")
    with pytest.raises(ValueError, match="frame_length"):
        env.make_params(frame_length=0)


def test_shares_floor_keeps_delays_finite():
    params = EdgeRetrainEnv().default_params
    d = physics.inference_delay(jnp.ones(2), jnp.asarray([1e6, 1.0]), jnp.zeros(2), params)
    assert np.isfinite(np.asarray(d)).all()

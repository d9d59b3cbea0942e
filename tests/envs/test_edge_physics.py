"""``edge-retrain-v0`` delay formulas and slot baselines against NumPy/SciPy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

from dtwin_jax.envs.edge_retrain import physics
from dtwin_jax.envs.edge_retrain.env import EdgeRetrainEnv
from dtwin_jax.envs.edge_retrain.policies import optimal_shares

U, M = 10, 3


@pytest.fixture(scope="module")
def params():
    return EdgeRetrainEnv().default_params


def _np(params, name):
    return float(np.asarray(getattr(params, name), np.float64))


def np_rates(pos, bs, fading, p):
    d = np.maximum(np.linalg.norm(pos[:, None] - bs[None], axis=-1), _np(p, "min_distance"))
    snr = _np(p, "tx_power") * d ** -_np(p, "pathloss_exp") * fading / _np(p, "noise_power")
    return np.maximum(_np(p, "bandwidth") * np.log2(1 + snr), physics.MIN_RATE)


def np_delay(x, w, assoc, rate, p):
    """Reference of the module docstring: shares by BS, then max(local, offload)."""
    share = np.zeros(len(x))
    for m in range(M):
        on = assoc == m
        tot = w[on].sum()
        share[on] = w[on] / tot if tot > 0 else 1.0 / max(on.sum(), 1)
    L, S, c = (_np(p, n) for n in ("samples_per_slot", "bits_per_sample", "infer_flops"))
    local = (1 - x) * L * c / _np(p, "local_flops")
    off = x * L * S / rate + x * L * c / (np.maximum(share, physics.MIN_SHARE) * _np(p, "bs_flops"))
    return np.maximum(local, off), share


def _instance(seed):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, 300, (U, 2))
    fading = rng.exponential(size=(U, M))
    assoc = rng.integers(0, M, U)
    x = rng.uniform(size=U)
    w = rng.uniform(size=U) * (rng.uniform(size=U) > 0.2)
    return pos, fading, assoc, x, w


@pytest.mark.parametrize("seed", range(5))
def test_rates_shares_and_delay_match_numpy(params, seed):
    pos, fading, assoc, x, w = _instance(seed)
    bs = np.asarray(params.bs_xy, np.float64)
    ref_rates = np_rates(pos, bs, fading, params)
    rates = physics.uplink_rates(physics.distances(jnp.asarray(pos, jnp.float32),
                                                   params.bs_xy), jnp.asarray(fading), params)
    np.testing.assert_allclose(rates, ref_rates, rtol=1e-4)
    rate = ref_rates[np.arange(U), assoc]
    np.testing.assert_allclose(physics.served_rate(rates, jnp.asarray(assoc)), rate, rtol=1e-4)
    ref_delay, ref_share = np_delay(x, w, assoc, rate, params)
    share = physics.compute_shares(jnp.asarray(w, jnp.float32), jnp.asarray(assoc), M)
    np.testing.assert_allclose(share, ref_share, rtol=1e-5)
    delay = physics.inference_delay(jnp.asarray(x, jnp.float32), jnp.asarray(rate, jnp.float32),
                                    share, params)
    np.testing.assert_allclose(delay, ref_delay, rtol=1e-4)


def test_zero_weights_give_equal_shares():
    assoc = jnp.asarray([0, 0, 1, 2, 2, 2])
    share = physics.compute_shares(jnp.zeros(6), assoc, M)
    np.testing.assert_allclose(share, [0.5, 0.5, 1.0, 1 / 3, 1 / 3, 1 / 3], rtol=1e-6)


def test_balanced_fraction_minimises_the_delay(params):
    """For fixed shares, the balanced split beats every split on a fine grid."""
    pos, fading, assoc, _, w = _instance(7)
    rate = np_rates(pos, np.asarray(params.bs_xy, np.float64), fading, params)[np.arange(U),
                                                                                 assoc]
    share = physics.compute_shares(jnp.asarray(w, jnp.float32), jnp.asarray(assoc), M)
    rate = jnp.asarray(rate, jnp.float32)
    x_star = physics.balanced_fraction(rate, share, params)
    best = physics.inference_delay(x_star, rate, share, params)
    grid = jnp.linspace(0, 1, 1001)
    all_d = jax.vmap(lambda x: physics.inference_delay(jnp.full(U, x), rate, share, params))(grid)
    np.testing.assert_array_less(best, all_d.min(0) * (1 + 1e-4) + 1e-9)


def test_retrain_time_shares_the_server(params):
    need = jnp.asarray([True, False, True, True])
    t = physics.retrain_time(100.0, 10.0, need, params)
    work = 100 * 3.0 * _np(params, "infer_flops") + 10 * _np(params, "gen_flops")
    np.testing.assert_allclose(t, np.where(np.asarray(need), 3 * work / 1e13, 0.0), rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_optimal_shares_match_scipy(params, seed):
    """The KKT bisection against SLSQP on the same convex problem (balanced split)."""
    pos, fading, assoc, _, _ = _instance(seed)
    assoc[:M] = np.arange(M)  # every BS serves someone
    rate = np_rates(pos, np.asarray(params.bs_xy, np.float64), fading, params)[np.arange(U),
                                                                                 assoc]
    L, S, c = (_np(params, n) for n in ("samples_per_slot", "bits_per_sample", "infer_flops"))
    loc = L * c / _np(params, "local_flops")
    up = L * S / rate
    k = L * c / _np(params, "bs_flops")

    def total(s):
        o = up + k / np.maximum(s, 1e-12)
        return np.sum(loc * o / (loc + o))

    cons = [{"type": "eq", "fun": (lambda s, m=m: s[assoc == m].sum() - 1)} for m in range(M)]
    s0 = np.array([1 / (assoc == a).sum() for a in assoc])
    ref = scipy.optimize.minimize(total, s0, constraints=cons, bounds=[(1e-9, 1)] * U,
                                  method="SLSQP", options=dict(ftol=1e-14, maxiter=500))
    got = np.asarray(optimal_shares(jnp.asarray(rate, jnp.float32), jnp.asarray(assoc), M,
                                    params), np.float64)
    for m in range(M):
        np.testing.assert_allclose(got[assoc == m].sum(), 1.0, rtol=1e-5)
    assert total(got) <= ref.fun * (1 + 1e-4)
    assert total(got) <= total(s0) + 1e-12  # never worse than equal shares

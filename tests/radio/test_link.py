"""Link budget, per-RB SINR and rates against NumPy loop references and hand values."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dtwin_jax import radio

rb_sinr = jax.jit(radio.rb_sinr)


def np_rb_sinr_loop(rx, alloc, noise):
    """Plain loop reference: interference from every other BS's transmission on the RB."""
    n_u, n_b, n_r = rx.shape
    sig = np.zeros_like(rx)
    itf = np.zeros_like(rx)
    for u in range(n_u):
        for b in range(n_b):
            for r in range(n_r):
                sig[u, b, r] = alloc[u, b, r] * rx[u, b, r]
                for b2 in range(n_b):
                    if b2 != b:
                        itf[u, b, r] += alloc[:, b2, r].sum() * rx[u, b2, r]
    return sig, itf, sig / (itf + noise)


def test_conversions_and_noise():
    np.testing.assert_allclose(radio.db_to_linear(jnp.array([-10.0, 0.0, 3.0])),
                               [0.1, 1.0, 10**0.3], rtol=1e-6)
    np.testing.assert_allclose(radio.linear_to_db(jnp.array([0.1, 1.0, 1000.0])), [-10, 0, 30],
                               atol=1e-5)
    assert float(radio.dbm_to_watt(30.0)) == pytest.approx(1.0, rel=1e-6)
    assert float(radio.watt_to_dbm(0.001)) == pytest.approx(0.0, abs=1e-5)
    x = jnp.linspace(-150.0, 60.0, 50)
    np.testing.assert_allclose(radio.watt_to_dbm(radio.dbm_to_watt(x)), x, atol=1e-4)
    # 20 MHz, NF 9 dB: -174 + 73.0103 + 9 = -91.9897 dBm
    assert float(radio.thermal_noise_dbm(20e6, 9.0)) == pytest.approx(-91.9897, abs=1e-3)
    # 180 kHz RB, no noise figure: 1.38e-23 * 290 * 180e3 W approx
    assert float(radio.thermal_noise_w(180e3)) == pytest.approx(10 ** (-17.4 - 3) * 180e3,
                                                                rel=1e-5)


def test_pairwise_distances_and_received_power():
    ue = jnp.array([[0.0, 0.0], [30.0, 40.0]])
    bs = jnp.array([[0.0, 0.0], [3.0, 4.0], [-6.0, 8.0]])
    d2, d3 = radio.pairwise_distances(ue, bs, h_ut=jnp.array([1.5, 2.0]),
                                      h_bs=jnp.array([25.0, 10.0, 1.5]))
    want2 = np.linalg.norm(np.asarray(ue)[:, None] - np.asarray(bs)[None], axis=-1)
    dh = np.array([1.5, 2.0])[:, None] - np.array([25.0, 10.0, 1.5])[None]
    np.testing.assert_allclose(d2, want2, rtol=1e-6)
    np.testing.assert_allclose(d3, np.sqrt(want2**2 + dh**2), rtol=1e-6)
    # budget: 46 dBm + 3 dBi - 120 dB - 4 dB shadowing = -75 dBm, fading 0.5 -> -78.0103 dBm
    p = radio.received_power_dbm(46.0, 120.0, 4.0, 0.5, 3.0)
    assert float(p) == pytest.approx(-78.0103, abs=1e-3)
    assert float(radio.received_power_w(46.0, 120.0, 4.0, 0.5, 3.0)) == pytest.approx(
        0.5 * 10 ** (-10.5), rel=1e-5)


def test_rb_sinr_matches_loop_reference():
    rng = np.random.default_rng(0)
    n_u, n_b, n_r = 5, 4, 6
    rx = (rng.exponential(size=(n_u, n_b, n_r)) * 10 ** rng.uniform(-9, -5, (n_u, n_b, 1)))
    # each BS gives each RB to at most one user, some RBs idle; plus one float power share
    alloc = np.zeros((n_u, n_b, n_r))
    for b in range(n_b):
        for r in range(n_r):
            u = rng.integers(-1, n_u)
            if u >= 0:
                alloc[u, b, r] = 1.0
    alloc[0, 0, 0], alloc[1, 0, 0] = 0.3, 0.7
    noise = 1e-9
    sig, itf, sinr = rb_sinr(rx, alloc, noise)
    want = np_rb_sinr_loop(rx, alloc, noise)
    for got, ref in zip((sig, itf, sinr), want, strict=True):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-30)
    # batched over leading dims equals one-by-one
    rxb = np.stack([rx, rx[::-1]])
    alb = np.stack([alloc, alloc[::-1]])
    sinr_b = jax.jit(jax.vmap(lambda r, a: radio.rb_sinr(r, a, noise)[2]))(rxb, alb)
    np.testing.assert_allclose(sinr_b[1], np_rb_sinr_loop(rx[::-1], alloc[::-1], noise)[2],
                               rtol=1e-5)
    np.testing.assert_allclose(rb_sinr(rxb, alb, noise)[2], sinr_b, rtol=1e-6)


def test_interference_not_lost_next_to_a_strong_signal():
    # signal 1e6 times the interference: a total-minus-self scheme would lose it in float32
    rx = np.array([[[1.0], [1e-7], [2e-7]]], dtype=np.float32).reshape(1, 3, 1)
    alloc = np.ones_like(rx)
    _, itf, sinr = rb_sinr(rx, alloc, 1e-12)
    assert float(itf[0, 0, 0]) == pytest.approx(3e-7, rel=1e-5)
    assert float(sinr[0, 0, 0]) == pytest.approx(1.0 / (3e-7 + 1e-12), rel=1e-5)


def test_full_load_sinr_and_load_coupled_rate_by_hand():
    p = np.array([[1e-9, 1e-10, 0.0], [4e-10, 4e-10, 2e-10], [0.0, 1e-9, 1e-9]])
    noise = 1e-10
    sinr = np.asarray(radio.full_load_sinr(p, noise))
    want = np.array([[p[u, b] / (p[u].sum() - p[u, b] + noise) for b in range(3)]
                     for u in range(3)])
    np.testing.assert_allclose(sinr, want, rtol=1e-5)
    assert sinr[0, 0] == pytest.approx(1e-9 / 2e-10, rel=1e-5)  # = 5
    # users 0 and 1 on BS 0 (share 10 MHz), user 2 alone on BS 2 (gets 20 MHz)
    bw = np.array([20e6, 20e6, 20e6])
    rate, load = radio.load_coupled_rate(sinr, jnp.array([0, 0, 2]), bw)
    np.testing.assert_allclose(load, [2, 0, 1])
    np.testing.assert_allclose(rate, [10e6 * np.log2(1 + 5.0), 10e6 * np.log2(1 + sinr[1, 0]),
                                      20e6 * np.log2(1 + sinr[2, 2])], rtol=1e-5)
    # user 1 inactive: user 0 gets the whole BS, user 1 gets nothing
    rate, load = radio.load_coupled_rate(sinr, jnp.array([0, 0, 2]), 20e6,
                                         active=jnp.array([True, False, True]))
    np.testing.assert_allclose(load, [1, 0, 1])
    np.testing.assert_allclose(rate[:2], [20e6 * np.log2(6.0), 0.0], rtol=1e-5)
    # an out-of-range association means "not served"
    rate, load = radio.load_coupled_rate(sinr, jnp.array([0, 3, 2]), 20e6)
    assert float(rate[1]) == 0.0 and float(load.sum()) == 2.0
    assert float(radio.shannon_rate(1e6, 3.0)) == pytest.approx(2e6)


@jax.jit
def _dnt_chain(key):
    """The DNT twin's chain: d^-2 gain, Rayleigh per (user, BS, RB), P = 1, N0 B = 1e-5."""
    k_pos, k_fad = jax.random.split(key)
    ue = jax.random.uniform(k_pos, (12, 2), minval=-50.0, maxval=50.0)
    bs = jnp.array([[-100.0, 0.0], [0.0, 0.0], [100.0, 0.0]])
    d2, _ = radio.pairwise_distances(ue, bs, 0.0, 0.0)
    rx = radio.power_law_gain(d2, 2.0)[..., None] * radio.rayleigh_gain(k_fad, (12, 3, 12))
    alloc = jnp.broadcast_to(jnp.eye(12)[:, None, :], (12, 3, 12))  # user u on RB u everywhere
    return rx, alloc, radio.rb_sinr(rx, alloc, 1e-5)[2]


def test_dnt_path_power_law_rayleigh():
    rx, alloc, sinr = _dnt_chain(jax.random.key(0))
    ref = np_rb_sinr_loop(np.asarray(rx, np.float64), np.asarray(alloc, np.float64), 1e-5)[2]
    np.testing.assert_allclose(sinr, ref, rtol=1e-4)


_CHAIN = jax.jit(lambda d, tx, nf, fad, alloc, bw: (
    radio.rb_sinr(
        radio.received_power_w(tx, radio.uma_nlos(d, 3.5, 25.0, 1.5)[..., None], 0.0, fad),
        alloc, radio.thermal_noise_w(bw, nf)),
    radio.shannon_rate(bw, radio.full_load_sinr(radio.dbm_to_watt(tx - d), nf)),
    radio.load_coupled_rate(radio.full_load_sinr(radio.dbm_to_watt(tx - d), 0.0),
                            jnp.zeros(d.shape[0], jnp.int32), bw),
    radio.watt_to_dbm(fad), radio.db_to_linear(d),
    radio.pairwise_distances(d, -d, d[:, 0], d[:, 1]),
))

_FLOATS = st.sampled_from([0.0, 1e-30, 1e-12, 1.0, 1e6, 1e12, 1e30, -1.0])


@settings(max_examples=40, deadline=None)
@given(
    d=hnp.arrays(np.float32, (3, 2), elements=_FLOATS),
    tx=st.sampled_from([-300.0, -30.0, 0.0, 46.0, 300.0, 1e4]),
    nf=st.sampled_from([0.0, 9.0, -1.0]),
    fad=hnp.arrays(np.float32, (3, 2, 4), elements=st.sampled_from([0.0, 1e-20, 1.0, 30.0])),
    alloc=hnp.arrays(np.float32, (3, 2, 4), elements=st.sampled_from([0.0, 0.5, 1.0])),
    bw=st.sampled_from([0.0, 1.0, 180e3, 20e6]),
)
def test_finite_for_extreme_inputs(d, tx, nf, fad, alloc, bw):
    out = _CHAIN(d, tx, nf, fad, alloc, bw)
    for leaf in jax.tree_util.tree_leaves(out):
        assert bool(jnp.all(jnp.isfinite(leaf)))
    sinr = out[0][2]
    assert bool(jnp.all(sinr >= 0) & jnp.all(sinr <= radio.SINR_MAX))

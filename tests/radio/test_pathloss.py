"""Pathloss models against hand-computed values and an independent NumPy transcription."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dtwin_jax import radio

C = 3.0e8


# --- independent float64 transcription of 38.901 Table 7.4.1-1, written from the 2D distance ---
def np_uma_umi(d2d, fc, hbs, hut, scen, los):
    d3d = np.sqrt(d2d**2 + (hbs - hut) ** 2)
    dbp = 4 * (hbs - 1) * (hut - 1) * fc * 1e9 / C
    if scen == "uma":
        near = 28 + 22 * np.log10(d3d) + 20 * np.log10(fc)
        far = 28 + 40 * np.log10(d3d) + 20 * np.log10(fc) - 9 * np.log10(dbp**2 + (hbs - hut) ** 2)
        nl = 13.54 + 39.08 * np.log10(d3d) + 20 * np.log10(fc) - 0.6 * (hut - 1.5)
    else:
        near = 32.4 + 21 * np.log10(d3d) + 20 * np.log10(fc)
        far = (32.4 + 40 * np.log10(d3d) + 20 * np.log10(fc)
               - 9.5 * np.log10(dbp**2 + (hbs - hut) ** 2))
        nl = 35.3 * np.log10(d3d) + 22.4 + 21.3 * np.log10(fc) - 0.3 * (hut - 1.5)
    pl_los = np.where(d2d <= dbp, near, far)
    return pl_los if los else np.maximum(pl_los, nl)


def np_rma(d2d, fc, hbs, hut, los, h=5.0, w=20.0):
    d3d = np.sqrt(d2d**2 + (hbs - hut) ** 2)
    dbp = 2 * np.pi * hbs * hut * fc * 1e9 / C

    def pl1(d):
        return (20 * np.log10(40 * np.pi * d * fc / 3) + min(0.03 * h**1.72, 10) * np.log10(d)
                - min(0.044 * h**1.72, 14.77) + 0.002 * np.log10(h) * d)

    pl_los = np.where(d2d <= dbp, pl1(d3d), pl1(dbp) + 40 * np.log10(d3d / dbp))
    if los:
        return pl_los
    nl = (161.04 - 7.1 * np.log10(w) + 7.5 * np.log10(h)
          - (24.37 - 3.7 * (h / hbs) ** 2) * np.log10(hbs)
          + (43.42 - 3.1 * np.log10(hbs)) * (np.log10(d3d) - 3)
          + 20 * np.log10(fc) - (3.2 * np.log10(11.75 * hut) ** 2 - 4.97))
    return np.maximum(pl_los, nl)


D2D = np.array([10.0, 35.0, 120.0, 400.0, 900.0, 2500.0, 4900.0])
CASES = [
    ("uma", radio.uma_los, radio.uma_nlos, 25.0, [1.5, 8.0]),
    ("umi", radio.umi_los, radio.umi_nlos, 10.0, [1.5, 5.0]),
]


@pytest.mark.parametrize("scen,f_los,f_nlos,hbs,huts", CASES)
@pytest.mark.parametrize("fc", [0.9, 3.5, 28.0])
def test_uma_umi_match_numpy_transcription(scen, f_los, f_nlos, hbs, huts, fc):
    for hut in huts:
        d3d = np.sqrt(D2D**2 + (hbs - hut) ** 2)
        for los, f in ((True, f_los), (False, f_nlos)):
            want = np_uma_umi(D2D, fc, hbs, hut, scen, los)
            got = np.asarray(f(d3d, fc, hbs, hut))
            np.testing.assert_allclose(got, want, atol=2e-3)


@pytest.mark.parametrize("fc", [0.7, 3.5, 6.0])
def test_rma_matches_numpy_transcription(fc):
    hbs, hut = 35.0, 1.5
    d3d = np.sqrt(D2D**2 + (hbs - hut) ** 2)
    np.testing.assert_allclose(radio.rma_los(d3d, fc, hbs, hut), np_rma(D2D, fc, hbs, hut, True),
                               atol=2e-3)
    np.testing.assert_allclose(radio.rma_nlos(d3d, fc, hbs, hut),
                               np_rma(D2D, fc, hbs, hut, False), atol=2e-3)


def test_hand_checked_values():
    # UMa LOS, fc 3.5 GHz, h_BS 25, h_UT 1.5: d'_BP = 4*24*0.5*3.5e9/3e8 = 560 m.
    # d3d = 100: 28 + 22*2 + 20*log10(3.5) = 82.8814
    assert float(radio.uma_los(100.0, 3.5, 25.0, 1.5)) == pytest.approx(82.8814, abs=1e-3)
    # d3d = 1000 (beyond the breakpoint): 28 + 120 + 10.8814 - 9*log10(560^2 + 23.5^2) = 109.4071
    assert float(radio.uma_los(1000.0, 3.5, 25.0, 1.5)) == pytest.approx(109.4071, abs=1e-3)
    # UMa NLOS at 100 m: 13.54 + 78.16 + 10.8814 = 102.5814
    assert float(radio.uma_nlos(100.0, 3.5, 25.0, 1.5)) == pytest.approx(102.5814, abs=1e-3)
    # UMi LOS at 50 m, 2 GHz: 32.4 + 21*log10(50) + 20*log10(2) = 74.0996
    assert float(radio.umi_los(50.0, 2.0, 10.0, 1.5)) == pytest.approx(74.0996, abs=1e-3)
    # Free space: 100 m at 2.4 GHz = 20 log10(4 pi d f / c), c = 299792458: 80.0520
    assert float(radio.free_space(100.0, 2.4)) == pytest.approx(80.0520, abs=1e-3)
    # 36.814 and the slicing simulator
    assert float(radio.tr36814_macro(1.0)) == pytest.approx(128.1, abs=1e-4)
    assert float(radio.tr36814_macro(0.5)) == pytest.approx(116.7813, abs=1e-3)
    assert float(radio.tr36814_pico(0.1)) == pytest.approx(104.0, abs=1e-3)
    assert float(radio.slicing_pathloss(0.01)) == pytest.approx(70.4, abs=1e-3)
    # log-distance: 40 dB at 1 m, exponent 3, 100 m -> 100 dB
    assert float(radio.log_distance(100.0, 40.0, 3.0)) == pytest.approx(100.0, abs=1e-4)
    # power law: floored at 1 m
    np.testing.assert_allclose(radio.power_law_gain(jnp.array([0.0, 0.5, 10.0]), 2.0),
                               [1.0, 1.0, 0.01], rtol=1e-6)


def test_okumura_hata_hand_value():
    # f = 900 MHz, h_BS = 30 m, h_UT = 1.5 m, d = 1 km:
    # a(h) = (1.1*2.95424 - 0.7)*1.5 - (1.56*2.95424 - 0.8) = 0.01582
    # L = 69.55 + 26.16*2.95424 - 13.82*1.47712 - 0.01582 + 0 = 126.4032
    assert float(radio.okumura_hata(1.0, 900.0, 30.0, 1.5)) == pytest.approx(126.4032, abs=2e-3)
    # at 5 km add (44.9 - 6.55*1.47712) * log10(5) = 24.6200
    assert float(radio.okumura_hata(5.0, 900.0, 30.0, 1.5)) == pytest.approx(151.0232, abs=3e-3)


@pytest.mark.parametrize("f,hbs", [(radio.uma_los, 25.0), (radio.umi_los, 10.0),
                                   (radio.rma_los, 35.0)])
def test_continuous_at_breakpoint(f, hbs):
    fc, hut = 3.5, 1.5
    if f is radio.rma_los:
        dbp = 2 * np.pi * hbs * hut * fc * 1e9 / C
    else:
        dbp = 4 * (hbs - 1) * (hut - 1) * fc * 1e9 / C
    d2d = np.array([dbp * (1 - 1e-5), dbp * (1 + 1e-5)])
    d3d = np.sqrt(d2d**2 + (hbs - hut) ** 2)
    pl = np.asarray(f(d3d, fc, hbs, hut))
    assert abs(pl[1] - pl[0]) < 0.01
    # and the slope changes: the far branch is steeper
    d2 = np.array([dbp / 2, dbp, 2 * dbp])
    pl = np.asarray(f(np.sqrt(d2**2 + (hbs - hut) ** 2), fc, hbs, hut))
    assert pl[2] - pl[1] > pl[1] - pl[0]


def test_nlos_never_below_los_and_selectors():
    d = jnp.geomspace(1.0, 2e4, 200)
    for los_f, nlos_f, sel, hbs in [(radio.uma_los, radio.uma_nlos, radio.uma, 25.0),
                                    (radio.umi_los, radio.umi_nlos, radio.umi, 10.0),
                                    (radio.rma_los, radio.rma_nlos, radio.rma, 35.0)]:
        pl_l, pl_n = los_f(d, 3.5, hbs, 1.5), nlos_f(d, 3.5, hbs, 1.5)
        assert bool(jnp.all(pl_n >= pl_l))
        is_los = jnp.arange(200) % 2 == 0
        np.testing.assert_array_equal(sel(d, 3.5, hbs, 1.5, is_los), jnp.where(is_los, pl_l, pl_n))


def test_los_probability():
    d = jnp.linspace(0.0, 5000.0, 2001)
    for f in (radio.los_probability_uma, radio.los_probability_umi, radio.los_probability_rma):
        for hut in (1.5, 17.0, 22.0):
            p = np.asarray(f(d, hut))
            assert np.all((p >= 0) & (p <= 1))
            assert np.all(p[np.asarray(d) <= 10.0] == 1.0)
    assert bool(jnp.all(radio.los_probability_uma(d[d <= 18.0]) == 1.0))
    assert bool(jnp.all(radio.los_probability_umi(d[d <= 18.0]) == 1.0))
    # hand values: UMi at 36 m: 0.5 + e^-1 * 0.5; UMa at 63 m: 18/63 + e^-1 * 45/63
    assert float(radio.los_probability_umi(36.0)) == pytest.approx(0.5 + 0.5 / np.e, abs=1e-6)
    assert float(radio.los_probability_uma(63.0, 1.5)) == pytest.approx(
        18 / 63 + 45 / 63 / np.e, abs=1e-6)
    assert float(radio.los_probability_rma(1010.0)) == pytest.approx(np.exp(-1.0), abs=1e-6)
    # UMa with a tall UT: C'(h) = ((h-13)/10)^1.5 raises the probability, here at 100 m, h=18
    base = 0.18 + np.exp(-100 / 63) * 0.82
    want = base * (1 + 0.5**1.5 * 1.25 * np.exp(-100 / 150))
    assert float(radio.los_probability_uma(100.0, 18.0)) == pytest.approx(want, abs=1e-6)
    # decreasing with distance for low UTs
    p = np.asarray(radio.los_probability_uma(d, 1.5))
    assert np.all(np.diff(p) <= 1e-7)


def test_sample_los_and_expected_pathloss():
    p = jnp.full((200_000,), 0.3)
    frac = float(jnp.mean(radio.sample_los(jax.random.key(0), p)))
    assert abs(frac - 0.3) < 0.005
    a, b = jnp.array([80.0, 90.0, 100.0]), jnp.array([95.0, 120.0, 100.0])
    np.testing.assert_allclose(radio.expected_pathloss(a, b, 1.0), a, atol=1e-4)
    np.testing.assert_allclose(radio.expected_pathloss(a, b, 0.0), b, atol=1e-4)
    want = -10 * np.log10(0.25 * 10 ** (-np.asarray(a) / 10) + 0.75 * 10 ** (-np.asarray(b) / 10))
    np.testing.assert_allclose(radio.expected_pathloss(a, b, 0.25), want, atol=1e-3)


def test_vmap_matches_broadcasting():
    d = jnp.linspace(5.0, 3000.0, 64)
    hbs = jnp.array([10.0, 25.0, 35.0])
    batched = jax.jit(jax.vmap(lambda h: radio.uma_nlos(d, 3.5, h, 1.5)))(hbs)
    np.testing.assert_allclose(batched, radio.uma_nlos(d[None], 3.5, hbs[:, None], 1.5),
                               rtol=1e-6)


_ALL = jax.jit(lambda d, fc, hbs, hut, p: jnp.stack([
    radio.uma_los(d, fc, hbs, hut), radio.uma_nlos(d, fc, hbs, hut),
    radio.umi_los(d, fc, hbs, hut), radio.umi_nlos(d, fc, hbs, hut),
    radio.rma_los(d, fc, hbs, hut), radio.rma_nlos(d, fc, hbs, hut),
    radio.los_probability_uma(d, hut), radio.los_probability_umi(d, hut),
    radio.los_probability_rma(d, hut), radio.free_space(d, fc),
    radio.log_distance(d, 30.0, 3.5), radio.power_law_gain(d, p),
    radio.power_law_gain(d, p, d_min=0.0),
    radio.tr36814_macro(d / 1e3), radio.tr36814_pico(d / 1e3), radio.slicing_pathloss(d / 1e3),
    radio.okumura_hata(d / 1e3, fc * 1e3, hbs, hut),
    radio.expected_pathloss(radio.uma_los(d, fc, hbs, hut), radio.uma_nlos(d, fc, hbs, hut),
                            radio.los_probability_uma(d, hut)),
]))


@settings(max_examples=60, deadline=None)
@given(
    d=st.sampled_from([0.0, 1e-12, 0.5, 1.0, 17.9, 1e3, 1e7, 1e20, 3e38, -5.0]),
    fc=st.floats(0.1, 100.0),
    hbs=st.floats(0.0, 100.0),
    hut=st.floats(0.0, 30.0),
    p=st.floats(-8.0, 8.0),
)
def test_finite_for_extreme_inputs(d, fc, hbs, hut, p):
    out = np.asarray(_ALL(jnp.float32(d), jnp.float32(fc), jnp.float32(hbs), jnp.float32(hut),
                          jnp.float32(p)))
    assert np.all(np.isfinite(out))
    assert out.dtype == np.float32

"""edge-retrain-v0's learning pieces: KL class mix (vs brute force and the exact greedy), the
drifting task's sampler, the classifier (accuracy in area, after drift, after incremental and
full retraining, with and without twin-generated data), padding masks, the twin's generator,
FLOP counts, jit/vmap consistency and determinism.

Speed: most tests draw with ``rbg`` keys built from integers (``_key``), never split: each
threefry call site takes XLA:CPU ~1-3 s to compile, RngBitGenerator a fraction of that; the
distributions tested do not depend on the PRNG. The jit/vmap test uses the default threefry
keys, as the env does. Every jitted function is compiled once and vmapped over seeds/cases.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from dtwin_jax.envs.edge_retrain import learning as L
from dtwin_jax.envs.edge_retrain.kl_mix import kl_divergence, kl_mix, mix_kl


def _key(seed, i):
    """An rbg key from two integers (Python or traced), without threefry."""
    data = jnp.stack([jnp.asarray(seed, jnp.uint32), jnp.asarray(i, jnp.uint32),
                      jnp.uint32(0x9E3779B9), jnp.uint32(0)])
    return jax.random.wrap_key_data(data, impl="rbg")


#: the default task of a seed (one compile shared by the tests)
_task = jax.jit(lambda seed: L.default_task(_key(seed, 0)))


# ------------------------------------------------------------------------------------ kl_mix
def _objective(n, p, g):
    """(uncovered target mass, sum_c p_c log(n_c + g_c) over covered classes), float64;
    the optimum minimises the first, then maximises the second (KL = const - second)."""
    m = n + g
    miss = np.sum(np.where((p > 0) & (m == 0), p, 0.0), axis=-1)
    fin = np.sum(np.where((p > 0) & (m > 0), p * np.log(np.where(m > 0, m, 1.0)), 0.0), -1)
    return miss, fin


def _compositions(total, parts):
    return np.array([c + (total - sum(c),) for c in itertools.product(range(total + 1),
                                                                       repeat=parts - 1)
                     if sum(c) <= total], np.float64).reshape(-1, parts)


def _greedy(n, p, total):
    """Reference exact optimum: greedy by marginal gain from g = 0 (float64)."""
    g = np.zeros_like(n)
    for _ in range(total):
        m = n + g
        with np.errstate(divide="ignore"):
            gain = np.where(m > 0, p * np.log1p(1.0 / np.where(m > 0, m, 1.0)), 1e30 * p)
        g[np.argmax(np.where(p > 0, gain, -np.inf))] += 1
    return g


def _proportional(n_gen, p):
    """Largest-remainder rounding of p * n_gen."""
    raw = p * n_gen
    g = np.floor(raw)
    rest = int(n_gen - g.sum())
    g[np.argsort(-(raw - g), kind="stable")[:rest]] += 1
    return g


def _kl64(p, q):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sum(scipy.special.rel_entr(p, q), axis=-1)


_kl_mix_batch = jax.jit(jax.vmap(kl_mix))

C_MAX = 10


def test_kl_mix_matches_brute_force_and_greedy():
    rng = np.random.default_rng(0)
    cases = []   # (real counts [C_MAX], target [C_MAX], n_generated, classes used)
    for _ in range(600):  # small: C <= 4 classes used, n_generated <= 8 (brute force)
        c = int(rng.integers(1, 5))
        n = np.zeros(C_MAX)
        n[:c] = rng.integers(0, 5, c) * (rng.random(c) < 0.6)
        if rng.random() < 0.2:
            n[:c] += rng.random(c) * 2  # float counts, as after the env's forgetting
        p = np.zeros(C_MAX)
        p[:c] = rng.dirichlet(np.ones(c)) * (rng.random(c) < 0.75)
        p[int(rng.integers(c))] += 0.05  # at least one class of the target
        cases.append((n, p / p.sum(), int(rng.integers(0, 9)), c))
    for _ in range(200):  # large: up to 10 classes, up to 300 samples (exact greedy)
        n = (rng.integers(0, 30, C_MAX) * (rng.random(C_MAX) < 0.5)).astype(np.float64)
        p = rng.dirichlet(np.full(C_MAX, 0.5)) * (rng.random(C_MAX) < 0.8)
        p[0] += 0.01
        cases.append((n, p / p.sum(), int(rng.integers(0, 301)), C_MAX))
    n_all = np.stack([c[0] for c in cases])
    p_all = np.stack([c[1] for c in cases]).astype(np.float32)
    g_all = np.asarray(_kl_mix_batch(jnp.asarray(n_all, jnp.float32), jnp.asarray(p_all),
                                     jnp.asarray([c[2] for c in cases], jnp.int32)))
    assert g_all.dtype == np.int32
    comps = {}
    worse_than_prop = 0
    for (n, _, total, c), p32, g in zip(cases, p_all, g_all, strict=True):
        p = p32.astype(np.float64) / p32.astype(np.float64).sum()
        assert g.sum() == total and (g >= 0).all()
        assert (g[p == 0] == 0).all(), "a class absent from the target was generated"
        empty = (p > 0) & (n == 0)
        if total >= empty.sum():
            assert (g[empty] >= 1).all(), "an empty class of the target was left empty"
        if c <= 4 and total <= 8:
            key = (total, c)
            if key not in comps:
                comps[key] = _compositions(total, c)
            allg = np.zeros((len(comps[key]), C_MAX))
            allg[:, :c] = comps[key]
            miss, fin = _objective(n, p, allg)
            best_miss = miss.min()
            best_fin = fin[miss <= best_miss + 1e-12].max()
        else:
            best_miss, best_fin = _objective(n, p, _greedy(n, p, total))
        got_miss, got_fin = _objective(n, p, g.astype(np.float64))
        assert got_miss <= best_miss + 1e-9, (n, p, total, g)
        assert got_fin >= best_fin - 1e-7 * max(1.0, abs(best_fin)), (n, p, total, g)
        # KL to the target is never worse than largest-remainder proportional rounding
        kl = _kl64(p, (n + g) / (n + g).sum()) if (n + g).sum() > 0 else np.inf
        gp = _proportional(total, p)
        kl_p = _kl64(p, (n + gp) / (n + gp).sum()) if (n + gp).sum() > 0 else np.inf
        assert kl <= kl_p + 1e-9 or (np.isinf(kl) and np.isinf(kl_p))
        worse_than_prop += kl < kl_p - 1e-9
    assert worse_than_prop > 100  # the real counts matter: strictly better in many cases


def test_kl_mix_known_cases():
    pad = lambda v: np.pad(np.asarray(v, np.float32), (0, C_MAX - 4))
    p = pad([0.5, 0.0, 0.3, 0.2])
    n = np.stack([pad([0, 0, 0, 0]), pad([5, 0, 0, 0]), pad([3, 7, 0, 1]), pad([0, 0, 0, 0])])
    g = np.asarray(_kl_mix_batch(jnp.asarray(n), jnp.asarray(np.stack([p] * 4)),
                                 jnp.asarray([0, 10, 12, 2])))[:, :4]
    assert (g[0] == 0).all()
    # 15 in all: continuous optimum p * 15 - n = (2.5, 0, 4.5, 3); integer optimum (2, 0, 5, 3)
    assert np.array_equal(g[1], [2, 0, 5, 3])
    # KL finite once every target class is covered; 2 samples for 3 empty classes: the two
    # largest target probabilities get them
    assert np.isfinite(float(mix_kl(n[2], p, np.pad(g[2], (0, C_MAX - 4)))))
    assert np.array_equal(g[3], [1, 0, 1, 0])
    # a static Python int n_generated works too (int real counts)
    static = jax.jit(kl_mix, static_argnums=2)(jnp.asarray([3, 7, 0, 1]), jnp.asarray(p[:4]), 12)
    assert np.array_equal(np.asarray(static), g[2])


def test_kl_divergence_conventions():
    p = jnp.asarray([0.5, 0.5, 0.0])
    assert float(kl_divergence(p, p)) == 0.0
    assert float(kl_divergence(p, jnp.asarray([0.25, 0.25, 0.5]))) == pytest.approx(np.log(2))
    assert np.isinf(float(kl_divergence(p, jnp.asarray([1.0, 0.0, 0.0]))))
    q = jnp.asarray([0.2, 0.3, 0.5])
    assert float(kl_divergence(p, q)) == pytest.approx(scipy.stats.entropy(p, q), rel=1e-6)


# ------------------------------------------------------------------------------- task, sample
def test_default_task_structure():
    tasks = jax.jit(jax.vmap(lambda s: L.default_task(_key(s, 0))))(jnp.arange(8))
    assert isinstance(tasks, L.TaskParams) and tasks.class_means.shape == (8, 8, 10)
    pri = np.asarray(tasks.area_priors)
    assert pri.shape == (8, L.NUM_AREAS, L.NUM_CLASSES)
    np.testing.assert_allclose(pri.sum(-1), 1.0, atol=1e-5)
    assert (pri > 0).all()
    top = np.sort(pri, axis=-1)[..., ::-1][..., : L.DOMINANT_PER_AREA].sum(-1)
    np.testing.assert_allclose(top, L.DOMINANT_MASS, atol=1e-5)
    dom = np.argsort(-pri, axis=-1)[..., : L.DOMINANT_PER_AREA]
    for t in range(8):  # 3 areas x 3 dominant of 8 classes: all covered, one shared
        assert len(set(dom[t].ravel())) == L.NUM_CLASSES
    sh = np.asarray(tasks.area_shift)
    gram = np.einsum("tad,tbd->tab", sh, sh)
    np.testing.assert_allclose(gram, np.broadcast_to(L.SHIFT_NORM ** 2 * np.eye(3), gram.shape),
                               atol=1e-4)


def test_sample_statistics():
    task = _task(7)
    w = jnp.asarray([0.5, 0.3, 0.2])
    n = 30000
    draw = jax.jit(lambda k, ww: L.sample_with_area(k, task, ww, n))
    x, y, area = draw(_key(7, 1), w)
    x, y, area = np.asarray(x, np.float64), np.asarray(y), np.asarray(area)
    assert x.shape == (n, L.DIM) and y.dtype == np.int32 and area.dtype == np.int32
    # class and area frequencies: chi-square goodness of fit
    probs = np.asarray(L.class_distribution(task, w), np.float64)
    np.testing.assert_allclose(probs, np.asarray(w) @ np.asarray(task.area_priors), rtol=1e-5)
    counts = np.bincount(y, minlength=L.NUM_CLASSES)
    assert scipy.stats.chisquare(counts, probs / probs.sum() * n).pvalue > 1e-3
    assert scipy.stats.chisquare(np.bincount(area, minlength=3), np.asarray(w) * n).pvalue > 1e-3
    # per (area, class): mean = class_means + area_shift (5 standard errors), noise std
    means = np.asarray(task.class_means)[None] + np.asarray(task.area_shift)[:, None]
    resid = []
    for a in range(3):
        for c in range(L.NUM_CLASSES):
            sel = (area == a) & (y == c)
            if sel.sum() >= 30:
                err = np.abs(x[sel].mean(0) - means[a, c])
                assert (err < 5.0 * L.NOISE_STD / np.sqrt(sel.sum())).all(), (a, c)
                resid.append(x[sel] - means[a, c])
    assert np.std(np.concatenate(resid)) == pytest.approx(L.NOISE_STD, rel=0.02)
    # one-hot area weights: every sample from that area; y follows that area's prior
    _, y1, a1 = (np.asarray(v) for v in draw(_key(7, 2), jnp.eye(3)[1]))
    assert (a1 == 1).all()
    want = np.asarray(task.area_priors[1], np.float64)
    assert scipy.stats.chisquare(np.bincount(y1, minlength=L.NUM_CLASSES),
                                 want / want.sum() * n).pvalue > 1e-3


# ------------------------------------------------------------------ classifier experiment
# the env's defaults: plain full-batch SGD, lr 0.1; models trained from scratch on 256 real
# samples for 200 steps; incremental retraining: 30 steps on 16 real + 48 generated samples
N_SEEDS = 16
TRAIN_N, TRAIN_STEPS = 256, 200         # initial model and full retrain: real samples, steps
LR, MOMENTUM = 0.1, 0.0
TEST_N = 2000                           # held-out samples per area
HIST_N = 600                            # twin's history: real samples over the three areas
REAL_N, GEN_N, RETRAIN_STEPS = 16, 48, 30
FEW = 8                                 # variant with only 8 of the 16 real samples


def _experiment(seed):
    """User trained in area 0 moves to area 1; accuracies (held out, area 1 unless said)."""
    task = L.default_task(_key(seed, 0))
    a_n, c_n, d = task.num_areas, task.num_classes, task.dim
    eye = jnp.eye(a_n)
    smp = jax.vmap(L.sample, (0, None, 0, None))
    x_tr, y_tr = smp(jax.vmap(_key, (None, 0))(seed, jnp.arange(1, 3)), task, eye[:2], TRAIN_N)
    x_te, y_te = smp(jax.vmap(_key, (None, 0))(seed, jnp.arange(3, 6)), task, eye, TEST_N)
    # model 0: trained from scratch in area 0; model 1: full retrain from scratch in area 1
    init = jax.vmap(L.init_classifier)(jax.vmap(_key, (None, 0))(seed, jnp.arange(6, 8)))
    trained = jax.vmap(lambda p, x, y: L.sgd_steps(p, x, y, TRAIN_STEPS, LR,
                                                   momentum=MOMENTUM))(init, x_tr, y_tr)
    p0 = jax.tree.map(lambda v: v[0], trained)
    p_full = jax.tree.map(lambda v: v[1], trained)
    # the twin: history over all areas, then the few real samples of area 1
    x_h, y_h, a_h = L.sample_with_area(_key(seed, 8), task, jnp.ones(a_n), HIST_N)
    gen = L.generator_update(L.generator_init(a_n, c_n, d), x_h, y_h, a_h)
    x_r, y_r = L.sample(_key(seed, 9), task, eye[1], REAL_N)
    gen = L.generator_update(gen, x_r, y_r, jnp.ones(REAL_N, jnp.int32))
    mix = gen.count[1] / gen.count[1].sum()            # twin's class mix of area 1

    def buffer(n_real, key):
        """The first ``n_real`` real samples + ``REAL_N + GEN_N - n_real`` generated ones
        (KL mix), in a fixed buffer of 16 real + 56 generated slots: x, y, weights with and
        without the generated samples, number generated."""
        real = jnp.arange(REAL_N) < n_real
        real_counts = jnp.bincount(y_r, real.astype(jnp.float32), length=c_n)
        counts = kl_mix(real_counts, mix, REAL_N + GEN_N - n_real)
        x_g, y_g, valid = L.generate(key, gen, eye[1], counts, GEN_N + REAL_N - FEW)
        w_real = jnp.concatenate([real, jnp.zeros(GEN_N + REAL_N - FEW, bool)])
        w_gen = jnp.concatenate([real, valid])
        return (jnp.concatenate([x_r, x_g]), jnp.concatenate([y_r, y_g]), w_gen, w_real,
                valid.sum())

    x16, y16, wg16, wr16, nv16 = buffer(REAL_N, _key(seed, 10))
    x8, y8, wg8, wr8, nv8 = buffer(FEW, _key(seed, 12))
    fresh = L.init_classifier(_key(seed, 11))
    starts = jax.tree.map(lambda a, b: jnp.stack([a, a, b, a, a]), p0, fresh)
    retrained = jax.vmap(lambda p, x, y, w: L.sgd_steps(p, x, y, RETRAIN_STEPS, LR, w=w,
                                                        momentum=MOMENTUM))(
        starts, jnp.stack([x16, x16, x16, x8, x8]), jnp.stack([y16, y16, y16, y8, y8]),
        jnp.stack([wr16, wg16, wg16, wr8, wg8]))
    acc1 = lambda p: L.accuracy(p, x_te[1], y_te[1])
    pick = lambda i: jax.tree.map(lambda v: v[i], retrained)
    return {
        "in_area": L.accuracy(p0, x_te[0], y_te[0]),
        "drift": 0.5 * (acc1(p0) + L.accuracy(p0, x_te[2], y_te[2])),
        "drift_area1": acc1(p0),
        "inc_real": acc1(pick(0)),
        "inc_gen": acc1(pick(1)),
        "scratch_same_data": acc1(pick(2)),
        "inc_real_8": acc1(pick(3)),
        "inc_gen_8": acc1(pick(4)),
        "full_retrain": acc1(p_full),
        "generated_valid": nv16,
        "generated_valid_8": nv8,
    }


@pytest.fixture(scope="module")
def experiment():
    out = jax.jit(jax.vmap(_experiment))(jnp.arange(N_SEEDS))
    out = {k: np.asarray(v) for k, v in out.items()}
    print({k: round(float(v.mean()), 3) for k, v in out.items()})
    return out


# Measured means over 16 seeds, five disjoint seed sets (0-79), min over sets of the mean ..
# max: in area 0.961..0.967 (worst seed 0.887); other areas 0.50..0.61; incremental retraining
# with 16 real + 48 generated 0.943..0.955, 16 real only 0.884..0.922, 8 real + 56 generated
# 0.939..0.959, 8 real only 0.826..0.866; from scratch on the same 16 + 48 samples and steps
# 0.907..0.916; full retraining (256 real, 200 steps) 0.957..0.968. Thresholds keep a margin.
def test_accuracy_in_area_and_after_drift(experiment):
    assert experiment["in_area"].mean() >= 0.93
    assert experiment["in_area"].min() >= 0.85
    assert experiment["drift"].mean() <= 0.72
    assert (experiment["in_area"] - experiment["drift"]).mean() >= 0.25


def test_incremental_retraining_recovers(experiment):
    gained = experiment["inc_gen"] - experiment["drift_area1"]
    lost = experiment["in_area"] - experiment["drift_area1"]
    assert experiment["inc_gen"].mean() >= 0.90
    assert gained.mean() >= 0.8 * lost.mean()          # measured 0.95..0.98
    assert (experiment["generated_valid"] == GEN_N).all()
    assert (experiment["generated_valid_8"] == GEN_N + REAL_N - FEW).all()
    # the full retraining baseline (256 real samples, 200 steps from scratch) is the ceiling
    assert experiment["full_retrain"].mean() >= 0.93
    # with the same small buffer and steps, incremental beats training from scratch
    assert experiment["inc_gen"].mean() >= experiment["scratch_same_data"].mean() + 0.01


def test_generated_data_helps(experiment):
    # 16 real samples: +0.033..+0.066 on average, better on 94-100 % of seeds
    diff = experiment["inc_gen"] - experiment["inc_real"]
    assert diff.mean() >= 0.015
    assert (diff > 0).mean() >= 0.75
    # 8 real samples: +0.085..+0.116, better on every seed
    diff = experiment["inc_gen_8"] - experiment["inc_real_8"]
    assert diff.mean() >= 0.04
    assert (diff > 0).mean() >= 0.85


# ------------------------------------------------------------------------------- padding
def test_padding_does_not_change_training():
    @jax.jit
    def run():
        x, y = L.sample(_key(1, 1), L.default_task(_key(1, 0)), jnp.eye(3)[0], 24)
        p = L.init_classifier(_key(1, 2))
        garbage = jnp.full((40, L.DIM), jnp.nan).at[::2].set(1e6)
        x_pad = jnp.concatenate([x, garbage])
        y_pad = jnp.concatenate([y, jnp.full(40, 3, jnp.int32)])
        w_pad = jnp.concatenate([jnp.ones(24), jnp.zeros(40)])

        def both(xx, yy, ww):
            full = L.sgd_steps(p, xx, yy, 10, 0.1, w=ww, momentum=0.9)
            mini = L.sgd_steps(p, xx, yy, 10, 0.1, batch=8, key=_key(1, 3), w=ww)
            return full, mini

        ref, pad, none = both(x, y, jnp.ones(24)), both(x_pad, y_pad, w_pad), both(
            x_pad, y_pad, jnp.zeros(64))
        accs = L.accuracy(ref[0], x, y), L.accuracy(ref[0], x_pad, y_pad, w_pad)
        return p, ref, pad, none, accs

    p, ref, pad, none, accs = run()
    for a, b in zip(jax.tree.leaves(ref), jax.tree.leaves(pad), strict=True):
        assert np.isfinite(np.asarray(b)).all()
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    # training moved the parameters; all weights 0: nothing changes
    assert not np.allclose(np.asarray(ref[0].w1), np.asarray(p.w1))
    for a, b in zip(jax.tree.leaves((p, p)), jax.tree.leaves(none), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # accuracy with a mask ignores the padding
    assert float(accs[0]) == pytest.approx(float(accs[1]))


# ----------------------------------------------------------------------------- generator
def test_generator_fits_truth_and_counts():
    task = _task(2)
    w = jnp.asarray([0.2, 0.5, 0.3])
    counts = jnp.asarray([40, 0, 25, 0, 70, 10, 0, 35], jnp.int32)   # 180 of 200 slots
    n_total = 200

    @jax.jit
    def fit_and_generate():
        x, y, area = L.sample_with_area(_key(2, 1), task, jnp.ones(3), 12000)
        mask = jnp.arange(12000) % 7 != 0                   # some samples masked out
        x = jnp.where(mask[:, None], x, 1e6)                 # masked garbage is ignored
        one = L.generator_update(L.generator_init(), x, y, area, mask)
        two = L.generator_update(L.generator_update(L.generator_init(), x[:5000], y[:5000],
                                                    area[:5000], mask[:5000]),
                                 x[5000:], y[5000:], area[5000:], mask[5000:])
        big = jax.vmap(L.generate, (0, None, None, None, None))(
            jax.vmap(_key, (None, 0))(2, jnp.arange(2, 42)), two, w, counts, n_total)
        only0 = L.generate(_key(2, 50), two.replace(count=two.count.at[1:, 5].set(0.0)),
                           jnp.asarray([0.0, 1.0, 0.0]), counts, n_total)
        return one, two, L.generator_variance(two), big, only0

    one, two, var, (xg, yg, vg), only0 = jax.tree.map(np.asarray, fit_and_generate())
    # batched Welford: one batch or two give the same statistics
    for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(two), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-3)
    truth = np.asarray(task.class_means)[None] + np.asarray(task.area_shift)[:, None]
    seen = two.count > 30
    assert seen.sum() >= 18
    err = np.abs(two.mean - truth)[seen]
    assert (err < 5.0 / np.sqrt(two.count[seen])[:, None]).all()
    np.testing.assert_allclose(var, L.NOISE_STD ** 2, rtol=0.05)
    # exact counts, valid first, padding zeroed
    assert vg.shape == (40, n_total)
    for i in range(40):
        assert np.array_equal(np.bincount(yg[i][vg[i]], minlength=8), np.asarray(counts))
        assert vg[i].sum() == counts.sum() and vg[i][: counts.sum()].all()
        assert (xg[i][~vg[i]] == 0).all() and (yg[i][~vg[i]] == 0).all()
    # generated class-conditional mean = mixture of the areas' means by p(a | c); variance =
    # within-area variance + between-area spread
    prior = two.count / two.count.sum(-1, keepdims=True)
    for c in np.flatnonzero(np.asarray(counts)):
        post = np.asarray(w) * prior[:, c]
        post = post / post.sum()
        mu = post @ truth[:, c]
        var = L.NOISE_STD ** 2 + post @ ((truth[:, c] - mu) ** 2)
        xc = xg[vg & (yg == c)]
        assert np.abs(xc.mean(0) - mu).max() < 5.0 * np.sqrt(var.max() / len(xc)), c
        np.testing.assert_allclose(xc.var(0).mean(), var.mean(), rtol=0.15)
    # a class never seen in the user's area is not produced (it comes out as padding)
    x0, y0, v0 = only0
    assert (np.bincount(y0[v0], minlength=8)[5] == 0) and v0.sum() == counts.sum() - 10
    assert v0[: v0.sum()].all()


# --------------------------------------------------------------------------------- flops
def test_flops_closed_forms():
    d, c, h = L.DIM, L.NUM_CLASSES, L.HIDDEN
    p = L.init_classifier(_key(0, 0))
    assert sum(v.size for v in jax.tree.leaves(p)) == L.num_params() == 320 + 32 + 256 + 8
    assert L.infer_flops() == 2 * d * h + 2 * h + 2 * h * c + c == 1224
    assert L.train_flops() == 1224 + 4 * c + 4 * d * h + 4 * h * c + 2 * L.num_params() == 4792
    assert L.train_flops(batch=10, momentum=True) == 10 * 3560 + 4 * L.num_params()
    # scaling with the layer sizes: doubling the hidden width about doubles the forward cost
    assert 1.9 < L.infer_flops(hidden=2 * h) / L.infer_flops() < 2.1


# ------------------------------------------------------------------ jit, vmap, determinism
def _pipeline(keys, task):
    """Sample, train (minibatches), fit the generator, mix and generate, from 4 keys."""
    w1 = jnp.asarray([0.0, 1.0, 0.0])
    x, y, area = L.sample_with_area(keys[0], task, jnp.asarray([0.6, 0.4, 0.0]), 64)
    p = L.sgd_steps(L.init_classifier(keys[1]), x, y, 5, 0.1, batch=16, key=keys[2])
    gen = L.generator_update(L.generator_init(), x, y, area)
    counts = kl_mix(jnp.bincount(y, length=L.NUM_CLASSES), L.class_distribution(task, w1), 24)
    return p, L.generate(keys[3], gen, w1, counts, 32), counts


def test_jit_vmap_consistency_and_determinism():
    # default threefry keys (as the env): rbg keys are not vmap-invariant
    keys = jax.random.split(jax.random.PRNGKey(4), 12).reshape(3, 4, -1)
    task = _task(4)
    batch_fn = jax.jit(jax.vmap(_pipeline, (0, None)))
    batch = batch_fn(keys, task)
    again = batch_fn(keys, task)
    for a, b in zip(jax.tree.leaves(batch), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    single = jax.jit(_pipeline)
    for i in (0, 2):
        one = single(keys[i], task)
        for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(batch), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-5, atol=1e-5)
    leaves = jax.tree.leaves(batch)
    assert not np.array_equal(np.asarray(leaves[0][0]), np.asarray(leaves[0][1]))

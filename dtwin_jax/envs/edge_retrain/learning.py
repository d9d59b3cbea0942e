"""The learning pieces of ``edge-retrain-v0``: a drifting synthetic classification task, the
users' tiny classifiers, their FLOP counts and the twin's class-conditional generator.

Everything is pure JAX, jittable and vmappable over users and over twins; sizes (``C``
classes, ``D`` features, ``A`` areas, ``H`` hidden units, sample counts, SGD steps) are static
Python ints or come from shapes.

Task (:class:`TaskParams`). A sample is drawn in an area ``a ~ Cat(area_weights)``, with label
``y ~ Cat(area_priors[a])`` and features::

    x = class_means[y] + area_shift[a] + noise_std * N(0, I_D)

so, within an area, classes are isotropic Gaussians with a shared covariance; moving between
areas changes both the class priors (label shift) and the feature statistics (covariate shift:
every class moves by the area's shift). :func:`default_task` (C = 8, D = 10, A = 3) gives each
area 3 dominant classes carrying 90 % of its mass (areas take consecutive triples of a random
permutation of the classes, so with 8 classes areas 0 and 2 share one) and orthogonal shifts
of norm 3.5 (in units of the noise std 1); class means are N(0, 1.5^2 I).

Measured (``tests/envs/test_edge_learning.py``; means over 16 task seeds, ranges over five
disjoint sets of 16 seeds; 2000 held-out samples per area; the env's defaults: plain
full-batch SGD, lr 0.1, a model trained from scratch on 256 area-0 samples for 200 steps,
then the user moves to area 1):

    in area 0 (trained there)                            0.961 .. 0.967  (worst seed 0.887)
    in the other areas (drift)                           0.50 .. 0.61
    incremental, 30 steps, 16 real + 48 generated (KL)   0.943 .. 0.955
    incremental, 30 steps, 16 real only                  0.884 .. 0.922
    incremental, 30 steps, 8 real + 56 generated (KL)    0.939 .. 0.959
    incremental, 30 steps, 8 real only                   0.826 .. 0.866
    from scratch, 30 steps, the same 16 + 48 samples     0.907 .. 0.916
    full retraining: 256 real samples, 200 steps         0.957 .. 0.968

(twin history: 600 real samples spread over the three areas, plus the new real samples).

Classifier: one hidden layer, ``logits = relu(x W1 + b1) W2 + b2`` (:class:`Classifier`, a
pytree; He-normal / LeCun-normal init, no QR). With isotropic shared-covariance classes the
Bayes classifier is linear, so softmax regression would do in principle; the hidden layer (32
units by default) makes the model a small but genuine neural network whose training cost
(:func:`train_flops`) is not trivially small, as on the paper's devices. Training:
:func:`sgd_steps`, cross entropy with per-sample weights (0 = padding), SGD with optional
heavy-ball momentum, a ``lax.scan`` over a static number of steps, full batch or minibatches
drawn with replacement in proportion to the weights.

Generator (:class:`GeneratorState`): the twin's record of the real samples it has seen, per
(area, class) cell: count, mean and sum of squared deviations (batched Welford / Chan
update), from which a pooled within-cell variance per feature is estimated. :func:`generate`
draws class-conditional Gaussians around the cells' means with the pooled variance (see its
docstring for the rule on cells never seen).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

#: default number of classes, features, areas and hidden units
NUM_CLASSES = 8
DIM = 10
NUM_AREAS = 3
HIDDEN = 32

#: default task: dominant classes per area, their share of the area's mass, norm of the
#: area shifts, std of the class means (per feature) and of the noise
DOMINANT_PER_AREA = 3
DOMINANT_MASS = 0.9
SHIFT_NORM = 3.5
MEAN_STD = 1.5
NOISE_STD = 1.0


# ---------------------------------------------------------------------------- random draws
# Every function below makes ONE call to the PRNG (a block of uniforms) and derives its
# categorical, Gaussian, exponential and permutation draws from it: each call site of
# jax.random inlines its own threefry hash, which takes XLA:CPU ~1-3 s to compile (batched
# under vmap), so this keeps the env's compile time down. The distributions are exact.
def _uniforms(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Uniform on the open interval (0, 1), f32."""
    tiny = jnp.finfo(jnp.float32).tiny
    return jax.random.uniform(key, shape, jnp.float32, minval=tiny, maxval=1.0)


def _normal(u: jax.Array) -> jax.Array:
    """Standard normal from uniforms on (0, 1) (inverse CDF, as ``jax.random.normal``)."""
    return jnp.sqrt(2.0) * jax.lax.erf_inv(jnp.clip(2.0 * u - 1.0, -1.0 + 1e-7, 1.0 - 1e-7))


def _categorical(probs: jax.Array, u: jax.Array) -> jax.Array:
    """Inverse-CDF draw ``[...] int32`` from unnormalised ``probs [..., K]`` and uniforms
    ``u [...]`` on (0, 1); categories of probability 0 are never drawn."""
    cum = jnp.cumsum(probs, axis=-1)
    idx = jnp.sum(cum <= (u * cum[..., -1])[..., None], axis=-1)
    k = probs.shape[-1]
    last = k - 1 - jnp.argmax(jnp.flip(probs, axis=-1) > 0, axis=-1)   # rounding guard
    return jnp.minimum(idx, last).astype(jnp.int32)


# ------------------------------------------------------------------------------------- task
@struct.dataclass
class TaskParams:
    """The synthetic classification task of one twin (vmap over a stack for many twins).

    Fields:
        class_means [C, D] f32: mean features of each class (before the area's shift).
        area_priors [A, C] f32: class distribution of each area; rows on the simplex.
        area_shift [A, D] f32: feature shift added to every sample drawn in the area.
        noise_std [] f32: std of the isotropic Gaussian feature noise.
    """

    class_means: jax.Array
    area_priors: jax.Array
    area_shift: jax.Array
    noise_std: jax.Array

    @property
    def num_classes(self) -> int:
        """``C``: number of classes (from ``class_means [C, D]``)."""
        return self.class_means.shape[-2]

    @property
    def dim(self) -> int:
        """``D``: feature dimension (from ``class_means [C, D]``)."""
        return self.class_means.shape[-1]

    @property
    def num_areas(self) -> int:
        """``A``: number of areas (from ``area_priors [A, C]``)."""
        return self.area_priors.shape[-2]


def default_task(
    key: jax.Array | int = 0,
    num_areas: int = NUM_AREAS,
    num_classes: int = NUM_CLASSES,
    dim: int = DIM,
    *,
    dominant: int = DOMINANT_PER_AREA,
    dominant_mass: float = DOMINANT_MASS,
    shift_norm: float = SHIFT_NORM,
    mean_std: float = MEAN_STD,
    noise_std: float = NOISE_STD,
) -> TaskParams:
    """A random task whose areas differ strongly (``key``: a PRNG key or an int seed).

    - ``class_means ~ N(0, mean_std^2 I)``;
    - area ``a``'s dominant classes are ``perm[(a * dominant + j) % C]``, ``j < dominant``, for
      a random permutation ``perm`` (disjoint sets while ``A * dominant <= C``); they share
      ``dominant_mass`` of the area's prior, split by a Dirichlet(5) draw, and the other
      classes share the rest by another Dirichlet(5) draw (every prior entry is > 0);
    - ``area_shift[a]``: ``shift_norm`` times random orthonormal directions (Gram-Schmidt;
      plain random directions beyond ``A > D``).

    Jittable and vmappable over keys (sizes are static ints).
    """
    if isinstance(key, int):
        key = jax.random.PRNGKey(key)
    c, a = num_classes, num_areas
    dominant = min(dominant, c)
    u = _uniforms(key, (c * dim + c + 5 * a * c + a * dim,))
    u_mean, u_perm, u_dir, u_shift = jnp.split(
        u, [c * dim, c * dim + c, c * dim + c + 5 * a * c])
    means = mean_std * _normal(u_mean).reshape(c, dim)
    perm = jnp.argsort(u_perm)
    idx = perm[(jnp.arange(a)[:, None] * dominant + jnp.arange(dominant)[None, :]) % c]
    is_dom = jnp.zeros((a, c), bool).at[jnp.arange(a)[:, None], idx].set(True)
    # Gamma(5, 1) as a sum of 5 Exp(1) draws (exact; far cheaper to compile than
    # jax.random.gamma), so each normalised group below is a Dirichlet(5, ..., 5) draw
    gam = -jnp.log(u_dir).reshape(5, a, c).sum(0)
    g_dom = jnp.where(is_dom, gam, 0.0)
    g_rest = jnp.where(is_dom, 0.0, gam)
    rest_mass = 1.0 - dominant_mass if dominant < c else 0.0
    priors = ((1.0 - rest_mass) * g_dom / g_dom.sum(-1, keepdims=True)
              + rest_mass * g_rest / jnp.maximum(g_rest.sum(-1, keepdims=True), 1e-30))
    # orthonormal shift directions (Gram-Schmidt, A <= D), so every two areas are
    # sqrt(2) shift_norm apart
    raw = _normal(u_shift).reshape(a, dim)
    dirs = []
    for i in range(a):
        v = raw[i]
        if i < dim:
            for q in dirs:
                v = v - (v @ q) * q
        dirs.append(v / jnp.linalg.norm(v))
    shift = shift_norm * jnp.stack(dirs)
    return TaskParams(
        class_means=means,
        area_priors=(priors / priors.sum(-1, keepdims=True)).astype(jnp.float32),
        area_shift=shift.astype(jnp.float32),
        noise_std=jnp.float32(noise_std),
    )


def class_distribution(task: TaskParams, area_weights: jax.Array) -> jax.Array:
    """``[C]`` class distribution of a user whose area is ``a`` w.p. ``area_weights [A]``:
    the mixture ``sum_a area_weights[a] * area_priors[a]`` (``area_weights`` is normalised)."""
    w = jnp.asarray(area_weights, jnp.float32)
    return (w / w.sum()) @ task.area_priors


def sample(
    key: jax.Array, task: TaskParams, area_weights: jax.Array, n: int
) -> tuple[jax.Array, jax.Array]:
    """``n`` i.i.d. samples of a user whose area is ``a`` w.p. ``area_weights [A]``.

    Returns ``x [n, D] f32`` and ``y [n] int32`` (area ~ Cat(area_weights), y ~
    Cat(area_priors[area]), x = class_means[y] + area_shift[area] + noise_std * N(0, I)).
    Use :func:`sample_with_area` to also get the areas.
    """
    x, y, _ = sample_with_area(key, task, area_weights, n)
    return x, y


def sample_with_area(
    key: jax.Array, task: TaskParams, area_weights: jax.Array, n: int
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """As :func:`sample`, also returning the area ``[n] int32`` of every sample."""
    u = _uniforms(key, (n, task.dim + 2))
    w = jnp.asarray(area_weights, jnp.float32)
    area = _categorical(w, u[:, 0])
    y = _categorical(task.area_priors[area], u[:, 1])
    noise = _normal(u[:, 2:])
    x = task.class_means[y] + task.area_shift[area] + task.noise_std * noise
    return x, y, area


# ------------------------------------------------------------------------------- classifier
@struct.dataclass
class Classifier:
    """Parameters of the one-hidden-layer classifier ``relu(x W1 + b1) W2 + b2``.

    Fields: w1 [D, H], b1 [H], w2 [H, C], b2 [C], all f32.
    """

    w1: jax.Array
    b1: jax.Array
    w2: jax.Array
    b2: jax.Array


def init_classifier(
    key: jax.Array, dim: int = DIM, num_classes: int = NUM_CLASSES, hidden: int = HIDDEN
) -> Classifier:
    """Fresh parameters: He-normal ``W1`` (ReLU), LeCun-normal ``W2``, zero biases (plain
    Gaussian draws, no QR: safe under vmap on CPU, see :mod:`dtwin_jax.learners.nets`)."""
    z = jax.random.normal(key, (dim * hidden + hidden * num_classes,), jnp.float32)
    w1 = z[: dim * hidden].reshape(dim, hidden) * jnp.sqrt(2.0 / dim)
    w2 = z[dim * hidden:].reshape(hidden, num_classes) * jnp.sqrt(1.0 / hidden)
    return Classifier(w1, jnp.zeros(hidden, jnp.float32), w2,
                      jnp.zeros(num_classes, jnp.float32))


def logits(params: Classifier, x: jax.Array) -> jax.Array:
    """``[..., D] -> [..., C]`` f32 logits."""
    h = jax.nn.relu(jnp.asarray(x, jnp.float32) @ params.w1 + params.b1)
    return h @ params.w2 + params.b2


def predict(params: Classifier, x: jax.Array) -> jax.Array:
    """``[..., D] -> [...]`` int32 predicted classes."""
    return jnp.argmax(logits(params, x), axis=-1).astype(jnp.int32)


def accuracy(params: Classifier, x: jax.Array, y: jax.Array,
             w: jax.Array | None = None) -> jax.Array:
    """``[]`` f32 fraction of ``x [n, D]`` classified as ``y [n]`` (weighted by ``w [n]`` if
    given, e.g. a validity mask; 0 if all weights are 0)."""
    hit = (predict(params, x) == y).astype(jnp.float32)
    if w is None:
        return hit.mean()
    w = jnp.asarray(w, jnp.float32)
    return jnp.sum(w * hit) / jnp.maximum(w.sum(), 1e-12)


def loss(params: Classifier, x: jax.Array, y: jax.Array, w: jax.Array) -> jax.Array:
    """``[]`` weighted mean cross entropy ``sum_i w_i CE_i / sum_i w_i`` (0 if all w are 0).

    Samples with ``w_i = 0`` have no effect at all, even if their ``x`` holds NaN/inf.
    """
    w = jnp.asarray(w, jnp.float32)
    keep = w > 0
    x = jnp.where(keep[:, None], x, 0.0)
    lg = logits(params, x)
    ce = jax.nn.logsumexp(lg, axis=-1) - jnp.take_along_axis(lg, y[:, None], axis=-1)[:, 0]
    return jnp.sum(jnp.where(keep, w * ce, 0.0)) / jnp.maximum(w.sum(), 1e-12)


def sgd_steps(
    params: Classifier,
    x: jax.Array,
    y: jax.Array,
    steps: int,
    lr: float,
    batch: int | None = None,
    key: jax.Array | None = None,
    w: jax.Array | None = None,
    momentum: float = 0.0,
) -> Classifier:
    """``steps`` SGD steps on the weighted cross entropy of ``x [n, D]``, ``y [n] int32``.

    ``w [n]`` f32/bool: sample weights (default all 1); 0 marks padding, which changes
    nothing (the fixed-size buffers of the env: real + generated samples with a validity
    mask). ``batch=None``: full-batch gradient descent (deterministic, ``key`` unused);
    otherwise each step draws ``batch`` indices with replacement with probability
    ``w_i / sum(w)`` (inverse-CDF on the cumulative weights, so padding appended at the end
    does not change the draws) and averages their unweighted CE. ``momentum``: heavy-ball
    ``v <- momentum v + g; theta <- theta - lr v`` (0 = plain SGD). ``steps``, ``batch``
    static; ``lr``, ``momentum`` may be traced. All weights 0: params unchanged.
    """
    n = x.shape[0]
    w = jnp.ones(n, jnp.float32) if w is None else jnp.asarray(w, jnp.float32)
    y = jnp.asarray(y, jnp.int32)
    grad = jax.grad(loss)
    if batch is not None:
        if key is None:
            raise ValueError("sgd_steps with batch needs a key")
        cum = jnp.cumsum(w)
        draws = jax.random.uniform(key, (steps, batch), jnp.float32)
    else:
        draws = jnp.zeros((steps, 0), jnp.float32)  # unused

    def step(carry, u):
        p, v = carry
        if batch is None:
            g = grad(p, x, y, w)
        else:
            idx = jnp.clip(jnp.searchsorted(cum, u * cum[-1], side="right"), 0, n - 1)
            ok = (w[idx] > 0).astype(jnp.float32)  # all 0 only if every weight is 0
            g = grad(p, x[idx], y[idx], ok)
        v = jax.tree.map(lambda vi, gi: momentum * vi + gi, v, g)
        p = jax.tree.map(lambda pi, vi: pi - lr * vi, p, v)
        return (p, v), None

    v0 = jax.tree.map(jnp.zeros_like, params)
    (params, _), _ = jax.lax.scan(step, (params, v0), draws)
    return params


def num_params(dim: int = DIM, num_classes: int = NUM_CLASSES, hidden: int = HIDDEN) -> int:
    """Number of scalar parameters of the classifier."""
    return dim * hidden + hidden + hidden * num_classes + num_classes


def infer_flops(dim: int = DIM, num_classes: int = NUM_CLASSES, hidden: int = HIDDEN) -> int:
    """FLOPs of one forward pass on one sample (multiply and add counted separately):
    ``2 D H + H`` (first layer and bias) ``+ H`` (ReLU) ``+ 2 H C + C`` (second layer).
    Defaults: 2 * 320 + 32 + 32 + 2 * 256 + 8 = 1224."""
    return 2 * dim * hidden + 2 * hidden + 2 * hidden * num_classes + num_classes


def train_flops(dim: int = DIM, num_classes: int = NUM_CLASSES, hidden: int = HIDDEN,
                batch: int = 1, momentum: bool = False) -> int:
    """FLOPs of one SGD step on ``batch`` samples: per sample the forward pass, the softmax
    cross entropy (``4 C``: exp, sum, log, subtract) and a backward pass counted as twice the
    forward pass's matrix products (``4 D H + 4 H C``: gradients of activations and weights);
    plus the parameter update, ``2 P`` (``4 P`` with momentum), once per step. Defaults,
    batch 1: 1224 + 32 + 2304 + 2 * 616 = 4792 (~3.9x a forward pass)."""
    fwd = infer_flops(dim, num_classes, hidden)
    bwd = 4 * dim * hidden + 4 * hidden * num_classes
    per_sample = fwd + 4 * num_classes + bwd
    update = (4 if momentum else 2) * num_params(dim, num_classes, hidden)
    return batch * per_sample + update


# -------------------------------------------------------------------------------- generator
@struct.dataclass
class GeneratorState:
    """The twin's class-conditional model of one user's (or one twin's) real samples.

    Fields (per area ``a`` and class ``c``):
        count [A, C] f32: real samples seen.
        mean [A, C, D] f32: their mean features (0 where count = 0).
        m2 [A, C, D] f32: their sum of squared deviations from the mean, per feature.
    """

    count: jax.Array
    mean: jax.Array
    m2: jax.Array


def generator_init(num_areas: int = NUM_AREAS, num_classes: int = NUM_CLASSES,
                   dim: int = DIM) -> GeneratorState:
    """An empty generator (nothing seen)."""
    return GeneratorState(
        count=jnp.zeros((num_areas, num_classes), jnp.float32),
        mean=jnp.zeros((num_areas, num_classes, dim), jnp.float32),
        m2=jnp.zeros((num_areas, num_classes, dim), jnp.float32),
    )


def generator_update(gen: GeneratorState, x: jax.Array, y: jax.Array, area: jax.Array,
                     mask: jax.Array | None = None) -> GeneratorState:
    """Add the real samples ``x [n, D]``, ``y [n] int32`` seen in ``area [n] int32`` (those
    with ``mask [n]`` True; default all) to the per-cell statistics.

    Batched Welford (Chan et al.): the batch's per-cell count, mean and squared deviations
    (two passes over the batch) are merged with the stored ones, which is numerically stable
    in float32 however many samples accumulate. O(n A C D).
    """
    a_n, c_n, d = gen.mean.shape
    mask = jnp.ones(x.shape[0], bool) if mask is None else jnp.asarray(mask, bool)
    x = jnp.where(mask[:, None], jnp.asarray(x, jnp.float32), 0.0)
    cell = jnp.asarray(area, jnp.int32) * c_n + jnp.asarray(y, jnp.int32)
    onehot = jax.nn.one_hot(cell, a_n * c_n, dtype=jnp.float32) * mask[:, None]  # [n, AC]
    n_b = onehot.sum(0)                                                          # [AC]
    mean_b = (onehot.T @ x) / jnp.maximum(n_b, 1.0)[:, None]                     # [AC, D]
    resid = x - mean_b[cell]
    m2_b = onehot.T @ (resid * resid)                                            # [AC, D]
    n_a = gen.count.reshape(-1)
    mean_a = gen.mean.reshape(-1, d)
    n = n_a + n_b
    frac = jnp.where(n > 0, n_b / jnp.maximum(n, 1.0), 0.0)[:, None]
    delta = mean_b - mean_a
    mean = mean_a + delta * frac
    m2 = gen.m2.reshape(-1, d) + m2_b + delta * delta * (n_a * frac[:, 0])[:, None]
    return GeneratorState(count=n.reshape(a_n, c_n), mean=mean.reshape(a_n, c_n, d),
                          m2=m2.reshape(a_n, c_n, d))


def generator_variance(gen: GeneratorState, default: float = 1.0) -> jax.Array:
    """``[D]`` pooled within-cell variance ``sum m2 / (N - #non-empty cells)`` (``default``
    while fewer than two samples share a cell)."""
    dof = gen.count.sum() - (gen.count > 0).sum()
    var = gen.m2.sum(axis=(0, 1)) / jnp.maximum(dof, 1.0)
    return jnp.where(dof > 0, var, default)


def generator_priors(gen: GeneratorState) -> jax.Array:
    """``[A, C]``: the class frequencies of the real samples seen in each area (rows of
    zeros for areas never seen)."""
    return gen.count / jnp.maximum(gen.count.sum(-1, keepdims=True), 1.0)


def generator_coverage(gen: GeneratorState, area_weights: jax.Array) -> jax.Array:
    """``[C]`` bool: classes :func:`generate` can produce for ``area_weights [A]`` (seen at
    least once in an area of positive weight)."""
    w = jnp.asarray(area_weights, jnp.float32)
    return ((w[:, None] > 0) & (gen.count > 0)).any(axis=0)


def generate(
    key: jax.Array,
    gen: GeneratorState,
    area_weights: jax.Array,
    class_counts: jax.Array,
    n_total: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Twin-generated samples: ``class_counts[c]`` of class ``c`` for a user in area ``a``
    w.p. ``area_weights [A]``; ``sum(class_counts) <= n_total`` (static).

    Each sample of class ``c`` draws its area from the posterior ``p(a | c) ∝
    area_weights[a] * count[a, c] / sum_c' count[a, c']`` (the area's empirical prior of
    ``c``), then ``x = mean[a, c] + sqrt(pooled variance) * N(0, I)``: the mixture over areas
    of the fitted class-conditional Gaussians. Rule for classes never seen in any area of
    positive weight (:func:`generator_coverage` False): their samples are NOT produced (no
    estimate of their features in that area); they come out as padding.

    Returns ``x [n_total, D] f32``, ``y [n_total] int32``, ``valid [n_total] bool``: the valid
    samples first, grouped by class in increasing order (exactly ``class_counts[c]`` of each
    covered class), then padding (``x = 0``, ``y = 0``, ``valid = False``). O(n_total (A + D)).
    """
    counts = jnp.asarray(class_counts, jnp.int32)
    covered = generator_coverage(gen, area_weights)
    counts = jnp.where(covered, counts, 0)
    ends = jnp.cumsum(counts)
    pos = jnp.arange(n_total)
    y = jnp.clip(jnp.searchsorted(ends, pos, side="right"), 0, counts.shape[0] - 1)
    valid = pos < ends[-1]
    y = jnp.where(valid, y, 0).astype(jnp.int32)
    w = jnp.asarray(area_weights, jnp.float32)
    prior = generator_priors(gen)                                            # [A, C]
    post = w[:, None] * prior                                                # [A, C]
    u = _uniforms(key, (n_total, gen.mean.shape[-1] + 1))
    area = _categorical(post.T[y], u[:, 0])                                  # [n_total]
    std = jnp.sqrt(generator_variance(gen))
    noise = _normal(u[:, 1:])
    x = gen.mean[area, y] + std * noise
    x = jnp.where(valid[:, None], x, 0.0)
    return x, y, valid

"""Matplotlib figures shared by the experiments: CDFs, bar charts with confidence intervals,
learning curves and street maps with trajectories.

Every function draws on ``ax`` (a new figure's axes when None) and returns the axes; inputs
are NumPy-convertible arrays. ``save(fig, path)`` writes a PNG atomically.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _axes(ax):
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    return ax


def cdf_plot(samples: Mapping[str, np.ndarray], ax=None, xlabel: str = "", log_x: bool = False,
             scale: float = 1.0):
    """Empirical CDF of each named sample (values divided by ``scale``)."""
    ax = _axes(ax)
    for name, x in samples.items():
        x = np.sort(np.asarray(x, np.float64).ravel()) / scale
        if x.size == 0:
            continue
        ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=name)
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def mean_ci(values, z: float = 1.96) -> tuple[float, float]:
    """Mean and half-width of a normal-approximation confidence interval (``z`` sigmas) of
    the mean of ``values`` (0 half-width for a single value)."""
    v = np.asarray(values, np.float64).ravel()
    if v.size < 2:
        return float(v.mean()), 0.0
    return float(v.mean()), float(z * v.std(ddof=1) / np.sqrt(v.size))


def bar_chart(names: Sequence[str], means, half_widths=None, ax=None, ylabel: str = "",
              groups: Sequence[str] | None = None):
    """Bars with error bars. ``means``/``half_widths``: ``[len(names)]``, or
    ``[len(groups), len(names)]`` for grouped bars (one colour per group)."""
    ax = _axes(ax)
    means = np.atleast_2d(np.asarray(means, np.float64))
    err = np.zeros_like(means) if half_widths is None else np.atleast_2d(half_widths)
    num_groups, num = means.shape
    width = 0.8 / num_groups
    x = np.arange(num)
    for g in range(num_groups):
        label = None if groups is None else groups[g]
        ax.bar(x + (g - (num_groups - 1) / 2) * width, means[g], width, yerr=err[g],
               capsize=2, label=label)
    ax.set_xticks(x)
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    if groups is not None:
        ax.legend(fontsize=7)
    return ax


def learning_curves(curves: Mapping[str, np.ndarray], ax=None, xlabel: str = "update",
                    ylabel: str = "", x=None):
    """Mean (line) and min-max band over seeds of each named ``[seeds, T]`` curve."""
    ax = _axes(ax)
    for name, c in curves.items():
        c = np.atleast_2d(np.asarray(c, np.float64))
        xs = np.arange(c.shape[1]) if x is None else np.asarray(x)
        ax.plot(xs, np.nanmean(c, 0), label=name)
        ax.fill_between(xs, np.nanmin(c, 0), np.nanmax(c, 0), alpha=0.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def map_with_trajectories(nodes=None, edges=None, trajectories=None, bs_xy=None,
                          bs_is_macro=None, ax=None, title: str = ""):
    """Street segments (``nodes [N, 2]``, ``edges [E, 2]``), trajectories ``[U, T, 2]`` and
    BS positions ``[B, 2]`` (macros as triangles, small cells as dots)."""
    ax = _axes(ax)
    if nodes is not None and edges is not None:
        nodes, edges = np.asarray(nodes), np.asarray(edges)
        seg = nodes[edges]  # [E, 2, 2]
        ax.plot(seg[:, :, 0].T, seg[:, :, 1].T, color="0.75", lw=0.6)
    if trajectories is not None:
        for tr in np.asarray(trajectories):
            ax.plot(tr[:, 0], tr[:, 1], lw=0.9, alpha=0.8)
    if bs_xy is not None:
        bs_xy = np.asarray(bs_xy)
        macro = (np.zeros(len(bs_xy), bool) if bs_is_macro is None
                 else np.asarray(bs_is_macro, bool))
        ax.scatter(*bs_xy[macro].T, marker="^", s=60, c="k", label="macro", zorder=3)
        ax.scatter(*bs_xy[~macro].T, marker="o", s=18, c="tab:red", label="small cell", zorder=3)
        ax.legend(fontsize=7, loc="upper right")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    return ax


def save(fig, path: str | os.PathLike, dpi: int = 130) -> None:
    """Write ``fig`` as PNG to ``path`` via a temporary file and an atomic rename."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    os.replace(tmp, path)
    plt.close(fig)


def _mean_err(values):
    """Means and half-widths of a list of numbers or of ``{"mean", "ci95"}`` dicts."""
    if values and isinstance(values[0], Mapping):
        return (np.array([v["mean"] for v in values], np.float64),
                np.array([v["ci95"] for v in values], np.float64))
    return np.asarray(values, np.float64), None


def sweep_two_axes(x, left_values, right_values, ax=None, xlabel: str = "", left: str = "",
                   right: str = ""):
    """Two quantities against ``x`` on a left and a right y axis; values are numbers or
    ``{"mean", "ci95"}`` dicts (drawn with error bars)."""
    ax = _axes(ax)
    x = np.asarray(x, np.float64)
    ax2 = ax.twinx()
    for axis, values, label, color in ((ax, left_values, left, "tab:blue"),
                                       (ax2, right_values, right, "tab:red")):
        mean, err = _mean_err(list(values))
        axis.errorbar(x, mean, yerr=err, color=color, marker="o", ms=3, capsize=2)
        axis.set_ylabel(label, color=color)
    ax.set_xlabel(xlabel)
    ax.grid(alpha=0.3)
    return ax


def true_vs_predicted(true, predicted, history: int, ax=None):
    """True walks ``[U, T, 2]`` (lines) and one-step predictions ``[U, T - history, 2]`` of the
    steps ``history .. T - 1`` (crosses), one colour per user."""
    ax = _axes(ax)
    true, predicted = np.asarray(true), np.asarray(predicted)
    for u in range(true.shape[0]):
        line, = ax.plot(true[u, :, 0], true[u, :, 1], lw=1.0, label=f"user {u} true")
        ax.plot(predicted[u, :, 0], predicted[u, :, 1], "x", ms=4, color=line.get_color(),
                label=f"user {u} GRU")
        ax.plot(true[u, history, 0], true[u, history, 1], "o", ms=3, color=line.get_color())
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    return ax


# ----------------------------------------------------------------------------- usability figures
# (deployment, trajectories, throughput CDFs, seed bands, scaling: used by the CLI's run
# directories, the notebooks and the benchmarks)


def deployment_map(bs_xy, user_xy, serving=None, active=None, bs_is_macro=None, field=None,
                   extent=None, field_label: str = "", ax=None, title: str = ""):
    """One twin's deployment: BSs ``[B, 2]`` (m; macros ``bs_is_macro [B]`` as triangles),
    users ``[U, 2]`` (m; only ``active [U]`` ones), a line from each user to its serving BS
    ``serving [U]`` (int index, negative = none) and, under them, a scalar ``field [H, W]``
    (coverage, e.g. best SINR in dB, or a shadowing map in dB) over ``extent`` (x0, x1, y0,
    y1 in m; row 0 at y0) with a colour bar labelled ``field_label``."""
    ax = _axes(ax)
    bs_xy, user_xy = np.asarray(bs_xy, np.float64), np.asarray(user_xy, np.float64)
    live = np.ones(len(user_xy), bool) if active is None else np.asarray(active, bool)
    if field is not None:
        image = ax.imshow(np.asarray(field, np.float64), origin="lower", extent=extent,
                          cmap="viridis", alpha=0.8, aspect="auto")
        ax.figure.colorbar(image, ax=ax, label=field_label, shrink=0.8)
    if serving is not None:
        serving = np.asarray(serving)
        for u in np.flatnonzero(live & (serving >= 0)):
            b = bs_xy[serving[u]]
            ax.plot([user_xy[u, 0], b[0]], [user_xy[u, 1], b[1]], color="0.35", lw=0.5,
                    alpha=0.7)
    ax.scatter(*user_xy[live].T, s=8, c="tab:blue", label="users", zorder=3)
    macro = (np.zeros(len(bs_xy), bool) if bs_is_macro is None
             else np.asarray(bs_is_macro, bool))
    ax.scatter(*bs_xy[macro].T, marker="^", s=70, c="k", label="macro BS", zorder=4)
    ax.scatter(*bs_xy[~macro].T, marker="s", s=25, c="tab:red", label="small cell", zorder=4)
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    return ax


def trajectory_panels(sets: Mapping[str, np.ndarray], nodes=None, edges=None, bs_xy=None,
                      max_per_panel: int = 16):
    """One panel per named trajectory set ``[K, L, 2]`` (m; e.g. real vs generated) over the
    same street map (``nodes [N, 2]``, ``edges [E, 2]``); at most ``max_per_panel``
    trajectories each, shared axes. Returns the figure."""
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets), 3.6), sharex=True,
                             sharey=True, squeeze=False)
    for ax, (name, trajs) in zip(axes[0], sets.items(), strict=True):
        map_with_trajectories(nodes, edges, np.asarray(trajs)[:max_per_panel], bs_xy, ax=ax,
                              title=name)
    return fig


def throughput_cdfs(rates_bps: Mapping[str, np.ndarray], ax=None, unit: str = "Mb/s",
                    edge_quantile: float = 0.05, log_x: bool = False):
    """Empirical CDFs of per-user throughput (bit/s) per named policy, in ``unit`` (``kb/s``,
    ``Mb/s`` or ``Gb/s``), with a dotted line at the ``edge_quantile`` (cell edge)."""
    scale = {"kb/s": 1e3, "Mb/s": 1e6, "Gb/s": 1e9}[unit]
    ax = cdf_plot(rates_bps, ax=ax, xlabel=f"user throughput ({unit})", log_x=log_x,
                  scale=scale)
    ax.axhline(edge_quantile, ls=":", color="0.4", lw=0.8)
    return ax


def training_curves(curves: Mapping[str, object], ax=None, xlabel: str = "update",
                    ylabel: str = "", x=None, confidence: float = 0.95):
    """Mean over seeds (line) and the Student-t ``confidence`` band of the mean
    (:func:`dtwin_jax.reporting.t_interval`) of each named curve, against ``x`` (default
    0, 1, ...). A curve is either ``[seeds, T]`` samples (``[T]`` = one seed, no band; NaN
    entries, e.g. before a first finished episode, are skipped per point, and points with
    fewer than two seeds get no band) or a reduced ``{"mean": [T], "ci95": [T]}`` record as
    the results files store it (the band is ``ci95``, whatever ``confidence``)."""
    from dtwin_jax.reporting import t_interval

    ax = _axes(ax)
    for name, c in curves.items():
        if isinstance(c, Mapping):
            mean = np.asarray(c["mean"], np.float64)
            half = np.asarray(c["ci95"], np.float64)
            label = name
        else:
            c = np.atleast_2d(np.asarray(c, np.float64))
            mean, half = t_interval(c, level=confidence, skip_nan=True)
            if c.shape[0] > 1:
                half = np.where(np.sum(~np.isnan(c), 0) > 1, half, np.nan)
                label = f"{name} ({c.shape[0]} seeds)"
            else:
                half, label = None, name
        xs = np.arange(mean.size) if x is None else np.asarray(x)
        line, = ax.plot(xs, mean, label=label)
        if half is not None:
            ax.fill_between(xs, mean - half, mean + half, alpha=0.25, color=line.get_color())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return ax


def scaling_plot(sizes, series: Mapping[str, np.ndarray], ax=None, xlabel: str = "twins",
                 ylabel: str = "env steps / s", ideal: bool = True):
    """Log-log throughput (or any rate) per named series ``[len(sizes)]`` against ``sizes``
    (NaN = not measured), with the ideal linear scaling from the first series' first point."""
    ax = _axes(ax)
    sizes = np.asarray(sizes, np.float64)
    for name, values in series.items():
        ax.plot(sizes, np.asarray(values, np.float64), marker="o", ms=3, label=name)
    if ideal and series:
        first = np.asarray(next(iter(series.values())), np.float64)
        ok = np.flatnonzero(np.isfinite(first))
        if ok.size:
            i = ok[0]
            ax.plot(sizes, first[i] * sizes / sizes[i], ls="--", color="0.5", lw=0.8,
                    label="linear")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)
    return ax


def moving_average(x, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps along the last axis of ``x [..., T]`` (the first
    ``window - 1`` entries average what exists so far)."""
    x = np.asarray(x, np.float64)
    c = np.cumsum(x, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    counts = np.minimum(np.arange(1, x.shape[-1] + 1), window)
    return out / counts

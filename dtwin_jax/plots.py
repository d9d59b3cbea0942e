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

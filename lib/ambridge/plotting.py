"""The book's one figure style, and the few plots every chapter draws (energy landscapes, trajectories).

Colours are the Okabe–Ito palette (safe for colour-blind readers); figures have a white face so they read the same
on the site's light and dark themes.
"""

from __future__ import annotations

from typing import Callable

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["PALETTE", "use_book_style", "energy_grid", "plot_landscape", "plot_paths"]

#: Okabe & Ito's colour-blind-safe palette (black omitted: it is the text colour).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442"]


def use_book_style() -> None:
    """Set matplotlib's defaults to the book's style. Call once at the top of a chapter."""
    mpl.rcParams.update(
        {
            "figure.figsize": (6.4, 4.0),
            "figure.dpi": 96,
            "savefig.dpi": 96,
            "figure.facecolor": "white",
            "axes.facecolor": "white",
            "savefig.facecolor": "white",
            "axes.prop_cycle": mpl.cycler(color=PALETTE),
            "axes.spines.top": False,
            "axes.spines.right": False,
            "axes.grid": False,
            "axes.titlesize": 11,
            "axes.labelsize": 10,
            "legend.frameon": False,
            "legend.fontsize": 9,
            "font.size": 10,
            "image.cmap": "viridis",
            "lines.linewidth": 1.6,
        }
    )


def energy_grid(
    energy: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    resolution: int = 150,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evaluate a 2-D energy on a ``resolution`` × ``resolution`` grid in one batched call; returns (X, Y, E)."""
    xs = torch.linspace(*xlim, resolution)
    ys = torch.linspace(*ylim, resolution)
    gx, gy = torch.meshgrid(xs, ys, indexing="xy")
    with torch.no_grad():
        values = energy(torch.stack([gx, gy], dim=-1))
    return gx.numpy(), gy.numpy(), values.cpu().numpy()


def plot_landscape(
    ax: plt.Axes,
    energy: Callable[[torch.Tensor], torch.Tensor],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    *,
    resolution: int = 150,
    levels: int = 25,
    memories: torch.Tensor | None = None,
    colorbar: bool = True,
    cmap: str = "viridis",
    clip_quantile: float | None = 0.6,
):
    """Filled contours of a 2-D energy (low = dark), the memories as white crosses. Returns the contour set.

    Energies grow quadratically away from the memories, which would spend every colour on the far corners:
    values above the ``clip_quantile`` of the grid share the top colour, so the basins keep their detail.
    """
    gx, gy, values = energy_grid(energy, xlim, ylim, resolution)
    if clip_quantile is not None:
        values = np.minimum(values, np.quantile(values, clip_quantile))
    cs = ax.contourf(gx, gy, values, levels=levels, cmap=cmap)
    if memories is not None:
        m = memories.detach().cpu().numpy()
        ax.scatter(m[:, 0], m[:, 1], marker="x", s=50, c="white", linewidths=2, zorder=3, label="memories")
    if colorbar:
        ax.figure.colorbar(cs, ax=ax, shrink=0.85, label="energy")
    ax.set_aspect("equal")
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return cs


def plot_paths(ax: plt.Axes, paths: torch.Tensor, *, color: str = "white", alpha: float = 0.9, **kwargs) -> None:
    """Draw trajectories ``paths`` (T, M, 2): one line per path, a dot at its start and a ring at its end."""
    p = paths.detach().cpu().numpy()
    if p.ndim != 3 or p.shape[-1] != 2:
        raise ValueError(f"`paths` must have shape (T, M, 2), got {p.shape}")
    for i in range(p.shape[1]):
        ax.plot(p[:, i, 0], p[:, i, 1], color=color, alpha=alpha, lw=1.0, **kwargs)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=10, color=color, zorder=4)
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=40, facecolors="none", edgecolors=PALETTE[1], lw=1.5, zorder=5)


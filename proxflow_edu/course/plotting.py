"""Figures shared by the notebooks. Every function draws on a given (or new) Axes and returns it."""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import torch
from matplotlib.axes import Axes
from torch import Tensor

from ..data import project_to_plane


def _ax(ax: Axes | None, figsize: tuple[float, float] = (4.5, 4.5)) -> Axes:
    return ax if ax is not None else plt.subplots(figsize=figsize)[1]


def plot_samples(generated: Tensor, data: Tensor | None = None, ax: Axes | None = None, title: str = "",
                 max_points: int = 2000) -> Axes:
    """Scatter generated samples over data, both projected on the data plane (coordinates z1, z2)."""
    ax = _ax(ax)
    if data is not None:
        d = project_to_plane(data[:max_points].detach().cpu())
        ax.scatter(d[:, 0], d[:, 1], s=3, c="0.7", label="data $\\pi$")
    g = project_to_plane(generated[:max_points].detach().cpu())
    ax.scatter(g[:, 0], g[:, 1], s=3, c="C0", label="generated $\\rho_T$")
    ax.set(xlabel="$z_1$ (data-plane coordinate)", ylabel="$z_2$", title=title, aspect="equal")
    ax.legend(loc="upper right", fontsize=7, markerscale=3)
    return ax


def plot_trajectories(path: Tensor, data: Tensor | None = None, ax: Axes | None = None, n_paths: int = 60,
                      title: str = "trajectories") -> Axes:
    """Particle paths (N+1, M, d), projected on the data plane: start (black), end (blue)."""
    ax = _ax(ax)
    if data is not None:
        d = project_to_plane(data[:2000].detach().cpu())
        ax.scatter(d[:, 0], d[:, 1], s=2, c="0.8")
    p = path[:, :n_paths].detach().cpu()
    z = torch.stack([project_to_plane(s) for s in p])
    ax.plot(z[:, :, 0], z[:, :, 1], c="C1", lw=0.8, alpha=0.8)
    ax.scatter(z[0, :, 0], z[0, :, 1], s=6, c="k", label="$x_0\\sim\\rho_0$")
    ax.scatter(z[-1, :, 0], z[-1, :, 1], s=6, c="C0", label="$x_T$")
    ax.set(xlabel="$z_1$", ylabel="$z_2$", title=title, aspect="equal")
    ax.legend(loc="upper right", fontsize=7)
    return ax


def plot_history(histories: dict[str, dict[str, list[float]]], key: str, ax: Axes | None = None,
                 logy: bool = False, title: str | None = None) -> Axes:
    """One training curve ``key`` (e.g. "kinetic_energy", "divergence") for several runs."""
    ax = _ax(ax, (5.5, 3.5))
    for label, h in histories.items():
        ax.plot(h["iteration"], h[key], label=label)
    ax.set(xlabel="iteration", ylabel=key.replace("_", " "), title=title or key.replace("_", " "))
    if logy:
        ax.set_yscale("symlog", linthresh=1e-2)
    ax.legend(fontsize=7)
    return ax


def image_grid(images: Tensor, nrow: int = 10, ax: Axes | None = None, title: str = "") -> Axes:
    """Show (n, 1, H, W) images in [0, 1] as one grid."""
    ax = _ax(ax, (6, 6))
    x = images.detach().cpu().clamp(0, 1)
    n, _, hgt, wid = x.shape
    ncol = (n + nrow - 1) // nrow
    canvas = torch.ones(ncol * (hgt + 2), nrow * (wid + 2))
    for i in range(n):
        r, c = divmod(i, nrow)
        canvas[r * (hgt + 2) + 1:r * (hgt + 2) + 1 + hgt, c * (wid + 2) + 1:c * (wid + 2) + 1 + wid] = x[i, 0]
    ax.imshow(canvas.numpy(), cmap="gray_r", vmin=0, vmax=1)
    ax.set(title=title, xticks=[], yticks=[])
    return ax


def small_multiples(n: int, size: float = 3.0, ncols: int | None = None) -> Sequence[Axes]:
    """A row (or grid) of n Axes for side-by-side comparisons."""
    ncols = ncols or n
    nrows = (n + ncols - 1) // ncols
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for a in axes.flat[n:]:
        a.set_visible(False)
    fig.set_layout_engine("constrained")
    return list(axes.flat[:n])


def figure_png(fig: plt.Figure, dpi: int = 80) -> bytes:
    """The figure as PNG bytes (tight bounding box); closes it."""
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def image_widget(png: bytes):  # noqa: ANN201 (an ipywidgets.Image; ipywidgets is imported only here)
    """An ``ipywidgets.Image`` of a PNG shown at its own pixel size.

    Without an explicit size JupyterLab stretches a widget image to the full cell width (a 351 x 318 figure drew at
    844 x 765, blurred and taller than a 720-pixel screen, so a slider and its picture were never seen together).
    """
    import struct

    import ipywidgets as widgets
    width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
    return widgets.Image(value=png, format="png", width=width, height=height,
                         layout=widgets.Layout(width=f"{width}px", height=f"{height}px"))

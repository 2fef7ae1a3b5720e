"""Toy data sets, the embedding, priors."""
from __future__ import annotations

import pytest
import torch

from proxflow_edu.data import TOY_DATASETS, embedding, project_to_plane, sample_prior, sample_toy
from proxflow_edu.metrics import off_manifold_distance


@pytest.mark.parametrize("name", TOY_DATASETS)
@pytest.mark.parametrize("dim", [2, 7, 12])
def test_toy_shapes_seeds_and_plane(name: str, dim: int) -> None:
    x = sample_toy(name, 500, dim=dim, seed=3)
    assert x.shape == (500, dim) and x.dtype == torch.float32 and torch.isfinite(x).all()
    assert torch.equal(x, sample_toy(name, 500, dim=dim, seed=3))
    assert not torch.equal(x, sample_toy(name, 500, dim=dim, seed=4))
    assert off_manifold_distance(x).max() < 1e-5  # exactly on the 2-D plane
    assert 0.3 < x.norm(dim=1).mean() < 6  # on the scale of the N(0, I) prior
    if dim > 2:
        assert torch.allclose(project_to_plane(x), sample_toy(name, 500, dim=2, seed=3), atol=1e-5)


def test_embedding_is_fixed_and_orthonormal() -> None:
    b = embedding(12)
    assert b.shape == (12, 2)
    assert torch.allclose(b.T @ b, torch.eye(2), atol=1e-6)
    assert torch.equal(b, embedding(12))


@pytest.mark.parametrize("kwargs, field", [
    (dict(name="spiral", n=10), "name"), (dict(name="moons", n=0), "n"), (dict(name="moons", n=10, dim=1), "dim"),
    (dict(name="moons", n=2.5), "n"),
])
def test_sample_toy_rejects_bad_input(kwargs: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        sample_toy(**kwargs)


def test_priors() -> None:
    g = torch.Generator().manual_seed(0)
    u = sample_prior("uniform", 1000, (1, 28, 28), g)
    assert u.shape == (1000, 1, 28, 28) and u.min() >= 0 and u.max() <= 0.5
    n = sample_prior("gaussian", 20000, (3,), g)
    assert abs(n.mean()) < 0.03 and abs(n.std() - 1) < 0.03
    with pytest.raises(ValueError, match="prior"):
        sample_prior("cauchy", 3, (2,))


def test_image_widget_has_the_png_size() -> None:
    import matplotlib.pyplot as plt

    from proxflow_edu.course.plotting import figure_png, image_widget
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([0, 1])
    png = figure_png(fig, dpi=50)
    widget = image_widget(png)
    assert widget.value == png
    assert widget.layout.width == f"{widget.width}px" and widget.layout.height == f"{widget.height}px"
    assert 100 < int(widget.width) <= 150 and 60 < int(widget.height) <= 100  # 3 x 2 inches at 50 dpi, tight box

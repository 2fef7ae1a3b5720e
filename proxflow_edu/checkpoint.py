"""Save and load trained flows: atomic writes, ``weights_only=True`` loads, config stored with the weights.

A run directory holds ``model.pt`` (state dicts + config + run facts, plain tensors and
primitives only) and ``history.json`` (a readable copy of the training curves).
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .train import FlowConfig, TrainResult, build_networks

FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted or of an unknown format."""


def _atomic_write(path: Path, write: Any) -> None:
    """Write to a temporary file in the same folder, then rename it over ``path`` (never a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save(result: TrainResult, run_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save ``result`` to ``run_dir`` (created if needed); returns the path of ``model.pt``."""
    run_dir = Path(run_dir)
    payload = {
        "format_version": FORMAT_VERSION,
        "config": result.config.to_dict(),
        "event_shape": list(result.event_shape),
        "potential": {k: v.detach().cpu() for k, v in result.potential.state_dict().items()},
        "discriminator": {k: v.detach().cpu() for k, v in result.discriminator.state_dict().items()},
        "history": result.history,
        "diverged_at": result.diverged_at,
        "divergence_reason": result.divergence_reason,
        "iterations_done": result.iterations_done,
        "wall_time": result.wall_time,
        "extra": extra or {},
    }
    model = run_dir / "model.pt"
    _atomic_write(model, lambda f: torch.save(payload, f))
    _atomic_write(run_dir / "history.json", lambda f: f.write(json.dumps(
        {"config": payload["config"], "diverged_at": result.diverged_at,
         "divergence_reason": result.divergence_reason, "iterations_done": result.iterations_done,
         "wall_time": result.wall_time, "extra": payload["extra"], "history": result.history},
        indent=1).encode()))
    return model


def load(run: str | Path, device: str = "cpu") -> TrainResult:
    """Load a run saved by :func:`save` (a run directory or its ``model.pt``).

    Raises:
        CheckpointError: the file is missing, not a checkpoint, truncated or corrupted.
    """
    path = Path(run)
    path = path / "model.pt" if path.is_dir() else path
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path} (corrupted or truncated?): {err}") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a proxflow_edu checkpoint of format {FORMAT_VERSION}")
    try:
        config = FlowConfig.from_dict({**payload["config"], "device": device})
        event_shape = tuple(payload["event_shape"])
        potential, discriminator = build_networks(config, event_shape)
        potential.load_state_dict(payload["potential"])
        discriminator.load_state_dict(payload["discriminator"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} does not match its config: {err}") from None
    return TrainResult(potential, discriminator, config, payload["history"], payload["diverged_at"],
                       payload["divergence_reason"], payload["iterations_done"], payload["wall_time"], event_shape)

"""Save and load trained flows: atomic writes, ``weights_only=True`` loads, config stored with the weights.

A run directory holds ``model.pt`` (state dicts + config + run facts: device, iterations, wall time; the
optimiser and generator states that let ``train(..., resume_from=load(run_dir))`` continue it; plain tensors and
primitives only) and ``history.json`` (a readable copy of the training curves).
Format 2 is the layout of ``proxflow_edu.nets`` / ``proxflow_edu.mnist.nets``; ``scripts/convert_checkpoints.py``
converts a format-1 run once.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import OFF, FlowConfig
from .train import TrainingState, TrainResult, build_networks
from .utils import atomic_write

FORMAT_VERSION = 2


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupted or of an unknown format."""


def save(result: TrainResult, run_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Save ``result`` to ``run_dir`` (created if needed); returns the path of ``model.pt``."""
    run_dir = Path(run_dir)
    facts = {"config": result.config.to_dict(), "device": result.config.device, "diverged_at": result.diverged_at,
             "divergence_reason": result.divergence_reason, "iterations_done": result.iterations_done,
             "wall_time": result.wall_time, "extra": json.loads(json.dumps(extra or {}))}  # plain types
    payload = {
        "format_version": FORMAT_VERSION, **facts,
        "event_shape": list(result.event_shape),
        "potential": {k: v.detach().cpu() for k, v in result.potential.state_dict().items()},
        "discriminator": {k: v.detach().cpu() for k, v in result.discriminator.state_dict().items()},
        "potential_ema": None if result.potential_ema is None else {  # absent in older files: no average
            k: v.detach().cpu() for k, v in result.potential_ema.state_dict().items()},
        "history": result.history,
        "training_state": None if result.training_state is None else {
            "optimizer_potential": result.training_state.optimizer_potential,
            "optimizer_discriminator": result.training_state.optimizer_discriminator,
            "generator": result.training_state.generator.cpu()},
    }
    model = atomic_write(run_dir / "model.pt", lambda f: torch.save(payload, f))
    atomic_write(run_dir / "history.json", lambda f: f.write(json.dumps({**facts, "history": result.history},
                                                                          indent=1).encode()))
    return model


def load(run: str | Path, device: str = "cpu") -> TrainResult:
    """Load a run saved by :func:`save` (a run directory or its ``model.pt``).

    Raises:
        CheckpointError: the file is missing, not a checkpoint, truncated, corrupted or of format 1.
    """
    path = Path(run)
    path = path / "model.pt" if path.is_dir() else path
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:
        raise CheckpointError(f"cannot read checkpoint {path} (corrupted or truncated?): {err}") from None
    version = payload.get("format_version") if isinstance(payload, dict) else None
    if version == 1:
        raise CheckpointError(f"{path} is a format-1 checkpoint (proxflow_edu 0.1); convert it once with "
                              f"`python scripts/convert_checkpoints.py {path.parent}`")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a proxflow_edu checkpoint of format {FORMAT_VERSION}")
    try:
        # a config saved before a well-posedness option existed describes a run trained without it
        config = FlowConfig.from_dict({**OFF, **payload["config"], "device": device})
        event_shape = tuple(payload["event_shape"])
        potential, discriminator = build_networks(config, event_shape)
        potential.load_state_dict(payload["potential"])
        discriminator.load_state_dict(payload["discriminator"])
        potential_ema = None
        if payload.get("potential_ema") is not None:
            potential_ema = build_networks(config, event_shape)[0].requires_grad_(False)
            potential_ema.load_state_dict(payload["potential_ema"])
    except (KeyError, RuntimeError, ValueError, TypeError) as err:
        raise CheckpointError(f"checkpoint {path} does not match its config: {err}") from None
    state = payload.get("training_state")
    if state is not None:
        state = TrainingState(state["optimizer_potential"], state["optimizer_discriminator"],
                              state["generator"].cpu())
    return TrainResult(potential, discriminator, config, payload["history"], payload["diverged_at"],
                       payload["divergence_reason"], payload["iterations_done"], payload["wall_time"], event_shape,
                       state, potential_ema)

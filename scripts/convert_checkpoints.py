"""Convert format-1 run directories (proxflow_edu 0.1) to format 2, in place, once.

What changed in 0.2 (the package restructured around ``proxflow_edu.algorithm``):

* CNN state dicts: the conv trunk names its layers (``trunk.0`` -> ``trunk.conv1``, ``trunk.3`` -> ``trunk.conv2``)
  and the heads are ``proxflow_edu.nets.MLP`` (``head.2k`` -> ``head.layers.k``); toy MLPs are unchanged;
* the network-size fields of a ``mnist_cnn`` config were ignored before and now size the CNN heads: they become
  None (the paper's 512x3 / 256x3, which is what those runs trained);
* ``divergence_reason`` no longer repeats the iteration, which ``diverged_at`` holds.

Weights are copied, not changed: a converted run samples exactly as before. Usage:

    python scripts/convert_checkpoints.py checkpoints/mnist_w1w2 [more run dirs...]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import torch

from proxflow_edu import checkpoint
from proxflow_edu.config import OFF, FlowConfig
from proxflow_edu.train import TrainResult, build_networks

CNN_RENAMES = [(r"^trunk\.0\.", "trunk.conv1."), (r"^trunk\.3\.", "trunk.conv2."),
               (r"^head\.(\d+)\.", lambda m: f"head.layers.{int(m.group(1)) // 2}.")]


def convert_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in state.items():
        for pattern, repl in CNN_RENAMES:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out


def convert(run_dir: Path) -> str:
    path = run_dir / "model.pt"
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format_version") == checkpoint.FORMAT_VERSION:
        return f"{run_dir}: already format {checkpoint.FORMAT_VERSION}"
    if payload.get("format_version") != 1:
        raise SystemExit(f"{path}: not a format-1 proxflow_edu checkpoint")
    config = dict(payload["config"])
    if config["arch"] == "mnist_cnn":
        config.update(potential_width=None, potential_depth=None, discriminator_width=None, discriminator_depth=None)
        payload["potential"], payload["discriminator"] = (convert_state(payload["potential"]),
                                                          convert_state(payload["discriminator"]))
    config = FlowConfig.from_dict({**OFF, **config})  # format 1 predates the well-posedness options
    potential, discriminator = build_networks(config, tuple(payload["event_shape"]))
    potential.load_state_dict(payload["potential"])
    discriminator.load_state_dict(payload["discriminator"])
    reason = payload["divergence_reason"]
    if reason is not None:
        reason = re.sub(r"^iteration \d+: ", "", reason)
    result = TrainResult(potential, discriminator, config, payload["history"], payload["diverged_at"], reason,
                         payload["iterations_done"], payload["wall_time"], tuple(payload["event_shape"]))
    checkpoint.save(result, run_dir, extra=payload["extra"])
    return f"{run_dir}: converted to format {checkpoint.FORMAT_VERSION}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    for run in parser.parse_args(argv).runs:
        print(convert(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())

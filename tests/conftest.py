"""Shared test settings: CPU, deterministic, few threads, smoke mode for executed notebooks (nbval)."""
import os

os.environ.setdefault("PROXFLOW_SMOKE", "1")

import torch  # noqa: E402

torch.set_num_threads(1)  # small tensors; avoids oversubscribing shared cores

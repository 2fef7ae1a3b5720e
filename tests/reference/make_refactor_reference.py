"""Record samples and histories of fixed-seed runs (toy + 20-iteration MNIST) for the refactor check."""
import sys, torch
torch.set_num_threads(1)
from proxflow_edu.data import sample_toy
from proxflow_edu.train import FlowConfig, train
out = {}
data = sample_toy("8gaussians", 2000, dim=12, seed=0)
for variant in ("w1w2", "unregularized"):
    r = train(FlowConfig(variant=variant, n_iters=60, log_every=10, batch_size=100), data, progress=False)
    out[f"toy_{variant}_samples"] = r.sample(64, seed=3)
    out[f"toy_{variant}_samples_fine"] = r.sample(64, seed=3, h=0.2 / 8)
    out[f"toy_{variant}_history"] = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.history.items() if k != "time"}
from proxflow_edu.data import mnist
x = mnist("data", train=True, n=400, seed=0)
r = train(FlowConfig.preset("cpu_mnist", n_iters=20, batch_size=16, log_every=5), x, progress=False)
out["mnist_samples"] = r.sample(8, seed=3)
out["mnist_history"] = {k: torch.tensor(v, dtype=torch.float64) for k, v in r.history.items() if k != "time"}
torch.save(out, sys.argv[1])
print({k: (v.shape if torch.is_tensor(v) else list(v)) for k, v in out.items()})

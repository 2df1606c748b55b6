"""Trace one training run of a development scene: the loss and the endmembers' angle to the truth every
few epochs (a diagnostic: the truth is read only to print it, never to decide anything).

    python scripts/trace_run.py SCENE [--seed N] [--override '{"eem_lr": 0.001}'] [--every 10] [--out F.json]

One line per traced epoch: the run (0, then 1, 2 ... after restarts), the epoch, the training loss,
the mean spectral angle (rad) of the network's current endmembers (training mode, as the loss sees
them) to the scene's true ones after one-to-one matching, and each matched angle. The last line is
the finished run's score as ``bench_scene_run.py`` reports it. Each line ends with the gradient norms of
the optimiser's two parameter groups (the abundance module with the decoder; the endmember module)
at that epoch's step, after any spike limit (``grad_clip``).
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.eval.metrics import evaluate, matched_sad  # noqa: E402
from dffn_qgis.core.method import model as model_module, train as train_module  # noqa: E402
from dffn_qgis.core.run.config import params_for  # noqa: E402
from dffn_qgis.core.run.pipeline import unmix_scene  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scene", choices=scenes.ALL_NAMES)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--override", default="{}", help="JSON dict of parameter overrides")
    ap.add_argument("--every", type=int, default=10, help="trace every this many epochs")
    ap.add_argument("--out", default="", help="also write the trace to this JSON file")
    args = ap.parse_args()

    bench = scenes.load(args.scene)
    truth = bench.endmembers
    latest = {}
    forward, epoch = model_module.DFFN.forward, train_module._Run.epoch

    def traced_forward(self, x, valid=None):
        outputs = forward(self, x, valid)
        latest["E"] = outputs[2].detach().float().cpu().numpy()
        return outputs

    step = torch.optim.Adam.step

    def traced_step(self, *a, **k):
        latest["norms"] = [train_module.gradient_norm(g["params"]) for g in self.param_groups]
        return step(self, *a, **k)

    runs, trace = {}, []

    def traced_epoch(self, *a, **k):
        loss = epoch(self, *a, **k)
        n = len(self.history)
        if n == 1 or n % args.every == 0:
            angles = matched_sad(latest["E"], truth)
            row = [runs.setdefault(id(self), len(runs)), n, loss, float(angles.mean()), [float(v) for v in angles],
                   latest["norms"]]
            trace.append(row)
            print(f"run {row[0]} epoch {n:5d} loss {loss:.5f} mean SAD {row[3]:.4f} "
                  f"({', '.join(f'{v:.3f}' for v in angles)}); gradient norms "
                  f"{', '.join(f'{v:.3f}' for v in row[5])}", flush=True)
        return loss

    model_module.DFFN.forward, train_module._Run.epoch = traced_forward, traced_epoch
    torch.optim.Adam.step = traced_step
    params = params_for(args.preset, n_endmembers=truth.shape[1], seed=args.seed, device="cpu",
                        **json.loads(args.override))
    result = unmix_scene(bench.scene, params)
    valid = bench.scene.valid
    scores = evaluate(result.endmembers, result.abundances[:, valid], truth, bench.abundances[:, valid])
    print(f"finished: {result.record['epochs_run']} epochs, loss {result.loss:.5f}, mean SAD "
          f"{scores['mean_sad_rad']:.4f} rad (the outcome's endmembers, eval mode)")
    if args.out:
        Path(args.out).write_text(json.dumps(trace))


if __name__ == "__main__":
    main()

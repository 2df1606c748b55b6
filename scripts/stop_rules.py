"""Would stopping when the endmembers stop moving save epochs? Records, then replays, default runs.

    python scripts/stop_rules.py record SCENE --seed 1     # one default run, every epoch's endmembers
    python scripts/stop_rules.py replay                     # the rules on every recorded run

``record`` trains the default preset on a development scene and keeps, for every epoch, the loss and
the endmembers of the forward pass (training mode) in ``.bench/stop-rules/SCENE-sSEED.npz``.
``replay`` applies each rule "stop at the first epoch t >= t_min where no endmember has turned by tau
rad or more since epoch t - K" to the run that was kept (the lowest loss over the restarts) and
prints the epoch it stops at and the mean SAD against the truth of the lowest-loss state up to there,
beside the full run's.
"""
import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import numpy as np  # noqa: E402

from endmember_geometry import angles, matched  # noqa: E402

WORK = ROOT / ".bench" / "stop-rules"
RULES = [(K, tau, t_min) for K in (10, 20) for tau in (1e-3, 2e-3, 5e-3) for t_min in (100, 200)]


def record(scene_name: str, seed: int) -> None:
    from benchmarks import scenes
    from dffn_qgis.core.method import model, train
    from dffn_qgis.core.run.config import params_for
    from dffn_qgis.core.run.pipeline import unmix_scene

    endmembers, losses = [], []
    forward, loss_fn = model.DFFN.forward, train.dffn_loss

    def recording_forward(self, x, valid=None):
        out = forward(self, x, valid)
        if self.training:
            endmembers.append((id(self), out[2].detach().float().cpu().numpy().copy()))
        return out

    def recording_loss(*args, **kwargs):
        value = loss_fn(*args, **kwargs)
        losses.append(float(value.detach()))
        return value

    model.DFFN.forward, train.dffn_loss = recording_forward, recording_loss
    bench = scenes.load(scene_name)
    params = params_for("fast", n_endmembers=bench.endmembers.shape[1], seed=seed, device="cpu")
    t0 = time.perf_counter()
    result = unmix_scene(bench.scene, params)
    ids = [i for i, _ in endmembers]
    order = sorted(set(ids), key=ids.index)
    WORK.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(WORK / f"{scene_name}-s{seed}.npz", endmembers=np.stack([e for _, e in endmembers]),
                        runs=np.array([order.index(i) for i in ids]), losses=np.array(losses),
                        truth=bench.endmembers)
    print(json.dumps({"scene": scene_name, "seed": seed, "seconds": round(time.perf_counter() - t0, 1),
                      "epochs": result.record["epochs_run"], "restarts": result.record["restarts"]}))


def replay() -> None:
    rows = {}
    for path in sorted(WORK.glob("*.npz")):
        z = np.load(path)
        runs, losses, truth = z["runs"], z["losses"], z["truth"]
        kept = min(set(runs.tolist()), key=lambda r: losses[runs == r].min())
        E, loss = z["endmembers"][runs == kept], losses[runs == kept]

        def sad(t):
            return float(np.nanmean(matched(truth, E[t])))
        row = {"full": (len(loss), sad(int(np.argmin(loss))))}
        for K, tau, t_min in RULES:
            stop = len(loss)
            for t in range(max(t_min, K), len(loss)):
                if np.diag(angles(E[t], E[t - K])).max() < tau:
                    stop = t + 1
                    break
            row[(K, tau, t_min)] = (stop, sad(int(np.argmin(loss[:stop]))))
        rows[path.stem] = row
    names = list(rows)
    print("| rule (K, tau, t_min) | " + " | ".join(names) + " |")
    print("| --- " * (len(names) + 1) + "|")
    for rule in ["full", *RULES]:
        print(f"| {rule} | " + " | ".join(f"{rows[n][rule][0]} epochs, {rows[n][rule][1]:.4f}" for n in names) + " |")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    r = sub.add_parser("record")
    r.add_argument("scene")
    r.add_argument("--seed", type=int, default=1)
    sub.add_parser("replay")
    args = ap.parse_args()
    record(args.scene, args.seed) if args.command == "record" else replay()


if __name__ == "__main__":
    main()

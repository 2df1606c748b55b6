"""One run of the development-scene benchmark in its own process; prints one JSON line.

    bench_scene_run.py SCENE dffn --preset fast --seed 1 [--override '{"epochs": 300}'] [--log]
    bench_scene_run.py SCENE vca --seed 1
    bench_scene_run.py SCENE nfindr --seed 1

SCENE is a name of ``benchmarks.scenes.ALL_NAMES``. The process's peak resident memory is the
run's (the Python start-up and imports included).
"""
import argparse
import json
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from benchmarks import scenes  # noqa: E402
from dffn_qgis.core.eval.baseline import nfindr_fcls, vca_fcls  # noqa: E402
from dffn_qgis.core.run.config import params_for  # noqa: E402
from dffn_qgis.core.eval.metrics import evaluate, max_normalised_nnls  # noqa: E402
from dffn_qgis.core.run.pipeline import unmix_scene  # noqa: E402
from dffn_qgis.core.run.progress import Monitor  # noqa: E402


def scores(E, A_valid, bench, Y) -> dict:
    valid = bench.scene.valid
    A_true = bench.abundances[:, valid]
    one = evaluate(E, A_valid, bench.endmembers, A_true)
    out = {"sad_rad": one["one_to_one"]["sad_rad"], "rmse": one["one_to_one"]["rmse"],
           "mean_sad_rad": one["mean_sad_rad"], "mean_rmse": one["mean_rmse"],
           "ref_mean_sad_rad": one["reference"]["mean_sad_rad"], "ref_mean_rmse": one["reference"]["mean_rmse"],
           "scored_as": "the method's own abundances"}
    if bench.convention == "max-normalised NNLS":
        conv = evaluate(E, max_normalised_nnls(Y, E), bench.endmembers, A_true)
        out["own_mean_rmse"] = out["mean_rmse"]
        out.update(rmse=conv["one_to_one"]["rmse"], mean_rmse=conv["mean_rmse"],
                   ref_mean_rmse=conv["reference"]["mean_rmse"],
                   scored_as="abundances re-derived in the truth's convention (max-normalised NNLS)")
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scene", choices=scenes.ALL_NAMES)
    ap.add_argument("method", choices=["dffn", "vca", "nfindr"])
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--override", default="{}", help="JSON dict of parameter overrides")
    ap.add_argument("--save", default="", help="write the endmembers and abundances to this .npz")
    ap.add_argument("--log", action="store_true", help="print the run's log (restarts, stops, picks) to stderr")
    args = ap.parse_args()

    bench = scenes.load(args.scene)
    scene = bench.scene
    P = bench.abundances.shape[0]
    Y = scene.data[:, scene.valid].astype(np.float64)
    extra = {}
    t0 = time.perf_counter()
    if args.method in ("vca", "nfindr"):
        E, A = (vca_fcls if args.method == "vca" else nfindr_fcls)(Y, P, seed=args.seed)
    else:
        params = params_for(args.preset, n_endmembers=P, seed=args.seed, device="cpu", **json.loads(args.override))
        monitor = Monitor(info=lambda line: print(line, file=sys.stderr, flush=True)) if args.log else None
        result = unmix_scene(scene, params, monitor)
        E, A = result.endmembers, result.abundances[:, scene.valid]
        extra = {"epochs_run": result.record["epochs_run"], "final_loss": result.loss,
                 "restarts": result.record["restarts"], "restart_reasons": result.record["restart_reasons"],
                 "restart_notes": result.record["restart_notes"],
                 "precision": result.record["precision"],
                 "timings": result.record["timings"], "pixel_simplex": result.record.get("pixel_simplex")}
    seconds = time.perf_counter() - t0
    if args.save:
        np.savez_compressed(args.save, endmembers=E, abundances=A)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"scene": args.scene, "method": args.method, "preset": args.preset, "seed": args.seed,
                      "override": json.loads(args.override), "seconds": seconds, "peak_mb": peak_mb,
                      **scores(E, A, bench, Y), **extra}))


if __name__ == "__main__":
    main()

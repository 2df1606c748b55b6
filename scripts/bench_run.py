"""One benchmark run in its own process (so its peak memory is its own); prints one JSON line.

    bench_run.py samson --preset fast --seed 1
    bench_run.py synthetic --height 64 --width 64 --bands 120 --endmembers 4 --pure --seed 1 --method vca
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

from dffn_qgis.core.eval import synthetic  # noqa: E402
from dffn_qgis.core.eval.baseline import vca_fcls  # noqa: E402
from dffn_qgis.core.run.config import params_for  # noqa: E402
from dffn_qgis.core.io.mat_io import read_mat_scene, read_mat_truth  # noqa: E402
from dffn_qgis.core.eval.metrics import evaluate  # noqa: E402
from dffn_qgis.core.run.pipeline import unmix_scene  # noqa: E402
from dffn_qgis.core.io.scene import Scene  # noqa: E402

SAMSON = ROOT.parent / "shared" / "data" / "samson" / "Samson.mat"


def load(args):
    if args.scene == "samson":
        scene = read_mat_scene(str(SAMSON))
        A_true, M_true = read_mat_truth(str(SAMSON))
        return scene, A_true, M_true
    s = synthetic.make_scene(args.height, args.width, args.bands, args.endmembers, seed=args.scene_seed,
                             snr_db=args.snr, pure_pixels=args.pure)
    cube = s.cube / s.cube.max()
    scene = Scene(data=cube.astype(np.float32), valid=np.ones(cube.shape[1:], bool),
                  wavelengths=s.wavelengths, wavelength_units="nm", source="synthetic")
    return scene, s.abundances, s.endmembers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("scene", choices=["samson", "synthetic"])
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--method", choices=["dffn", "vca"], default="dffn")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--height", type=int, default=64)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--bands", type=int, default=120)
    ap.add_argument("--endmembers", type=int, default=3)
    ap.add_argument("--snr", type=float, default=30)
    ap.add_argument("--pure", action="store_true")
    ap.add_argument("--scene-seed", type=int, default=0)
    ap.add_argument("--override", default="{}", help="JSON dict of parameter overrides")
    args = ap.parse_args()

    scene, A_true, M_true = load(args)
    P = A_true.shape[0]
    t0 = time.perf_counter()
    if args.method == "vca":
        Y = scene.data.reshape(scene.n_bands, -1)
        E, A = vca_fcls(Y, P, seed=args.seed)
        A = A.reshape((P,) + scene.valid.shape)
        extra = {}
    else:
        params = params_for(args.preset, n_endmembers=P, seed=args.seed, device="cpu",
                            **json.loads(args.override))
        result = unmix_scene(scene, params)
        E, A = result.endmembers, result.abundances
        extra = {"epochs_run": result.record["epochs_run"], "final_loss": result.loss,
                 "timings": result.record["timings"], "start_losses": result.record["start_losses"],
                 "loss_every_50": [round(min(result.history[:i + 1]), 5)
                                   for i in range(49, len(result.history), 50)]}
    seconds = time.perf_counter() - t0
    scores = evaluate(E, A, M_true, A_true)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"scene": args.scene, "method": args.method, "preset": args.preset, "seed": args.seed,
                      "seconds": seconds, "peak_mb": peak_mb,
                      "sad_rad": scores["one_to_one"]["sad_rad"], "rmse": scores["one_to_one"]["rmse"],
                      "mean_sad_rad": scores["mean_sad_rad"], "mean_rmse": scores["mean_rmse"],
                      "ref_mean_sad_rad": scores["reference"]["mean_sad_rad"],
                      "ref_mean_rmse": scores["reference"]["mean_rmse"], **extra}))


if __name__ == "__main__":
    main()

"""Same seed, same bytes? The same unmixing repeated, each in a fresh process.

    python scripts/repeat_runs.py [--repeats 4] [--epochs 300] [--precision auto] [--default]
                                  [--scene NAME] [--seed 1] [--env NAME=VALUE ...]

The scene is tests/test_determinism.py's (105 x 105 pixels, 224 bands, 6 endmembers, no pure
pixels, 30 dB), or ``--scene``, a development scene of ``benchmarks/scenes.py`` with its own
endmember count. ``--env`` sets environment variables of the runs (for example
``MKL_CBWR=AUTO,STRICT``). Without ``--default`` the runs have restarts and the patience rule off
and ``--epochs`` epochs; with it, the default preset as it is. Prints, per run, a hash of the
endmember and abundance bytes, the final loss, the precision, epochs and seconds.
"""
import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RUN = r"""
import hashlib, sys, time
import numpy as np
sys.path.insert(0, {root!r})
from dffn_qgis.core.eval import synthetic
from dffn_qgis.core.io.scene import Scene
from dffn_qgis.core.run.config import params_for
from dffn_qgis.core.run.pipeline import unmix_scene
name = {scene!r}
if name:
    from benchmarks import scenes
    bench = scenes.load(name)
    scene, P = bench.scene, bench.abundances.shape[0]
else:
    s = synthetic.make_scene(105, 105, 224, 6, seed=0, snr_db=30, pure_pixels=False)
    scene, P = Scene(data=s.cube / s.cube.max(), valid=np.ones((105, 105), bool)), 6
extra = {extra!r}
t0 = time.perf_counter()
r = unmix_scene(scene, params_for(n_endmembers=P, seed={seed}, device="cpu", **extra))
h = hashlib.sha256(r.endmembers.tobytes() + r.abundances.tobytes()).hexdigest()[:16]
print(h, repr(r.loss), r.record["precision"], r.record.get("epochs_run"), round(time.perf_counter() - t0, 1))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--default", action="store_true", help="the default preset (patience and restarts on)")
    ap.add_argument("--scene", default="", help="a development scene (benchmarks/scenes.py) instead")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the runs' environment")
    args = ap.parse_args()
    env = dict(os.environ, **dict(item.split("=", 1) for item in args.env))
    extra = {"precision": args.precision}
    if not args.default:
        extra.update(epochs=args.epochs, patience=0, restarts=0)
    lines = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", RUN.format(root=str(ROOT), extra=extra, scene=args.scene,
                                                                 seed=args.seed)],
                             capture_output=True, text=True, cwd=ROOT, env=env)
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        lines.append(out.stdout.strip().splitlines()[-1])
        print(lines[-1], flush=True)
    print("same bytes in every run" if len({line.split()[0] for line in lines}) == 1 else "RUNS DIFFER")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Same seed, same bytes? The same unmixing repeated, each in a fresh process.

    python scripts/repeat_runs.py [--repeats 4] [--epochs 300] [--precision auto] [--default]

The scene is tests/test_determinism.py's (105 x 105 pixels, 224 bands, 6 endmembers, no pure
pixels, 30 dB). Without ``--default`` the runs have restarts and the patience rule off and
``--epochs`` epochs; with it, the default preset as it is. Prints, per run, a hash of the
endmember and abundance bytes, the final loss, the precision, epochs and seconds.
"""
import argparse
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
s = synthetic.make_scene(105, 105, 224, 6, seed=0, snr_db=30, pure_pixels=False)
scene = Scene(data=s.cube / s.cube.max(), valid=np.ones((105, 105), bool))
extra = {extra!r}
t0 = time.perf_counter()
r = unmix_scene(scene, params_for(n_endmembers=6, seed=1, device="cpu", **extra))
h = hashlib.sha256(r.endmembers.tobytes() + r.abundances.tobytes()).hexdigest()[:16]
print(h, repr(r.loss), r.record["precision"], r.record.get("epochs_run"), round(time.perf_counter() - t0, 1))
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4)
    ap.add_argument("--epochs", type=int, default=300)
    ap.add_argument("--precision", default="auto", choices=["auto", "float32", "bfloat16"])
    ap.add_argument("--default", action="store_true", help="the default preset (patience and restarts on)")
    args = ap.parse_args()
    extra = {"precision": args.precision}
    if not args.default:
        extra.update(epochs=args.epochs, patience=0, restarts=0)
    lines = []
    for _ in range(args.repeats):
        out = subprocess.run([sys.executable, "-c", RUN.format(root=str(ROOT), extra=extra)], capture_output=True,
                             text=True, cwd=ROOT)
        if out.returncode:
            raise SystemExit(out.stderr[-2000:])
        lines.append(out.stdout.strip().splitlines()[-1])
        print(lines[-1], flush=True)
    print("same bytes in every run" if len({line.split()[0] for line in lines}) == 1 else "RUNS DIFFER")
    return 0


if __name__ == "__main__":
    sys.exit(main())

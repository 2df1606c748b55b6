"""Batch speed-up: the same scenes through `python -m dffn_qgis batch` with 1 worker and with 2.

    python scripts/bench_batch.py [--scenes 4] [--size 100] [--bands 120]

Writes the scenes once (generated, under .bench/batch/, git-ignored), then times each layout
(1 worker with all cores; one worker per core) end to end, the cluster's start included, each
into a fresh output folder, and prints a Markdown table for docs/BENCHMARKS.md.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import _cpu_name  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=4)
    ap.add_argument("--size", type=int, default=100)
    ap.add_argument("--bands", type=int, default=120)
    ap.add_argument("--endmembers", type=int, default=4)
    args = ap.parse_args()
    from dffn_qgis.core.eval import synthetic

    folder = ROOT / ".bench" / "batch"
    inputs = folder / "scenes"
    inputs.mkdir(parents=True, exist_ok=True)
    for i in range(args.scenes):
        path = inputs / f"scene_{i}_{args.size}x{args.size}x{args.bands}.tif"
        if not path.exists():
            scene = synthetic.make_scene(args.size, args.size, args.bands, args.endmembers, seed=100 + i, snr_db=30)
            synthetic.write_geotiff(scene, path, scale=10000)
    pattern = str(inputs / f"scene_*_{args.size}x{args.size}x{args.bands}.tif")
    cores = os.cpu_count() or 1
    rows = []
    for workers in (1, cores):
        out = folder / f"out-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        argv = [sys.executable, "-m", "dffn_qgis", "batch", pattern, "-o", str(out), "-p", str(args.endmembers),
                "--library", "none", "--workers", str(workers), "-q"]
        t0 = time.perf_counter()
        proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if proc.returncode:
            raise SystemExit(proc.stderr[-2000:])
        rows.append((workers, cores // workers, seconds))
        print(f"bench-batch: {workers} worker(s): {seconds:.1f} s", flush=True)
    base = rows[0][2]
    print(f"\n{args.scenes} scenes of {args.size} x {args.size} pixels, {args.bands} bands, {args.endmembers} "
          f"endmembers, default preset; {_cpu_name()}, {cores} cores; {time.strftime('%Y-%m-%d')}\n")
    print("| workers | threads each | time (s) | speed-up |\n| --- | --- | --- | --- |")
    for workers, threads, seconds in rows:
        print(f"| {workers} | {threads} | {seconds:.1f} | {base / seconds:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``make bench-apply``: unmixing with given spectra at scale (issue goal: 1000 x 1000 x 224, 6 spectra,
FCLS, at most 60 s and 2 GB on 2 cores).

The scene is generated once by ``scripts/make_large_scene.py`` into ``.bench/apply/`` (git-ignored);
each run is ``python -m dffn_qgis apply`` in its own process, timed from outside, its peak memory read
from the kernel (the largest resident set of the child), with GDAL's block cache left at its default
and at 256 MB. The table goes to docs/BENCHMARKS.md.
"""
import argparse
import resource
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from bench import _cores, _cpu_name, publish  # noqa: E402

WORK = ROOT / ".bench" / "apply"
START, END = "<!-- bench-apply:start (written by make bench-apply) -->", "<!-- bench-apply:end -->"


def scene(size: int) -> Path:
    path = WORK / f"scene_{size}.tif"
    if not path.exists():
        WORK.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "scripts" / "make_large_scene.py"), str(path), "--size", str(size),
                        "--bands", "224", "--endmembers", "6", "--seed", "3"], check=True)
    return path


def run(path: Path, cache_mb) -> tuple:
    out = WORK / f"out_{path.stem}_{cache_mb}"
    env = None
    if cache_mb is not None:
        import os
        env = dict(os.environ, GDAL_CACHEMAX=str(cache_mb))
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "dffn_qgis", "apply", str(path), "--spectra",
                           str(path.with_name(path.stem + "_truth_endmembers.csv")), "-o", str(out), "-q"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(proc.stderr)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024      # the largest child so far
    return seconds, peak_mb


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--no-doc", action="store_true")
    args = ap.parse_args()
    path = scene(args.size)
    rows = ["| scene | spectra | solver | GDAL cache | time (s) | peak memory (MB) |", "| --- | --- | --- | --- | --- | --- |"]
    for cache in (256, None):          # smaller cache first: ru_maxrss keeps the largest child
        seconds, peak = run(path, cache)
        rows.append(f"| {args.size} x {args.size} x 224 | 6 | fcls | {'default' if cache is None else f'{cache} MB'} "
                    f"| {seconds:.1f} | {peak:.0f} |")
    doc = [f"Written by `make bench-apply` on {datetime.now(timezone.utc).strftime('%Y-%m-%d')}; {_cpu_name()}, "
           f"{_cores()} cores. Peak memory: the largest resident set of the run's process (with the default "
           f"cache, the larger of both runs).", "", *rows]
    publish("\n".join(doc), START, END, args.no_doc, "bench-apply")


if __name__ == "__main__":
    main()

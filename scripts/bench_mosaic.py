"""Large scenes as accurate as small ones? Mosaics of mirrored copies of scenes with truth.

    python scripts/bench_mosaic.py [--scenes samson,G01-enmap-4] [--copies 10] [--seeds 1,2,3]
                                   [--large] [--label NAME] [--no-doc] [--unmix-args "--input-components 64"]

Each scene of ``benchmarks/scenes.py`` is tiled ``copies`` x ``copies`` times, every other copy
mirrored so that the copies join without edges (Samson: 950 x 950 pixels), written as int16
reflectance x 10000 with a GDAL scale, like real products, its truth tiled the same way (all under
.bench/mosaic/, git-ignored, made once). Each seed runs ``python -m dffn_qgis unmix`` with the
default settings (so the scalable path) and is scored with ``python -m dffn_qgis evaluate``
(the run's own abundances against the tiled truth, one-to-one matching); the exact path's runs
on the original scene are those of ``make bench-scenes`` (.bench/scenes-runs/, the run's own
abundances), run now when missing. ``--large`` adds the generated 1000 x 1000 x 224 scene of
``make bench-scale``, where the question is whether every material is found (the largest
per-endmember SAD). Runs are cached per scene, seed and ``--label`` (the code being measured, and
the ``--unmix-args`` added to every run's command line).
"""
import argparse
import json
import shlex
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from benchmarks import scenes  # noqa: E402
from bench import _cpu_name, publish  # noqa: E402
from bench_scale import scene_for  # noqa: E402
from bench_scenes import method_key  # noqa: E402
from dffn_qgis.core.run.config import DEFAULT_PRESET  # noqa: E402

WORK = ROOT / ".bench" / "mosaic"
START, END = "<!-- mosaic:start (written by scripts/bench_mosaic.py) -->", "<!-- mosaic:end -->"


def mirrored_tiles(array: np.ndarray, copies: int) -> np.ndarray:
    """``array`` (..., H, W) tiled copies x copies, odd rows and columns of copies mirrored."""
    rows = []
    for i in range(copies):
        row = []
        for j in range(copies):
            block = array[..., ::-1, :] if i % 2 else array
            row.append(block[..., :, ::-1] if j % 2 else block)
        rows.append(np.concatenate(row, axis=-1))
    return np.concatenate(rows, axis=-2)


def mosaic_files(name: str, copies: int) -> dict:
    from dffn_qgis.core.eval.synthetic import SyntheticScene, write_geotiff

    path = WORK / f"{name}_x{copies}.tif"
    truth = WORK / f"{name}_x{copies}_truth_abundances.tif"
    if not path.exists() or not truth.exists():
        bench = scenes.load(name)
        scene = bench.scene
        L = scene.data.shape[0]
        wavelengths = (np.asarray(scene.wavelengths, float) if scene.wavelengths is not None
                       else np.linspace(401.0, 889.0, L))          # Samson's range
        cube = np.where(scene.valid[None], scene.data, 0).astype(np.float32)
        mosaic = SyntheticScene(cube=mirrored_tiles(cube, copies), endmembers=bench.endmembers,
                                abundances=mirrored_tiles(bench.abundances.astype(np.float32), copies),
                                wavelengths=wavelengths, names=list(bench.names))
        print(f"bench-mosaic: writing {path.name} ({mosaic.cube.shape[1]} x {mosaic.cube.shape[2]})", flush=True)
        WORK.mkdir(parents=True, exist_ok=True)
        write_geotiff(mosaic, path, nodata_region=False, scale=10000)
    return {"input": path, "truth": truth, "endmembers": WORK / f"{name}_x{copies}_truth_endmembers.csv"}


def large_files() -> dict:
    """The generated 1000 x 1000 x 224 scene of ``make bench-scale`` (made there when missing)."""
    files = scene_for(1000)
    return {"input": files["input"], "truth": files["truth"], "endmembers": files["truth_endmembers"]}


def run_unmix(key: str, files: dict, P: int, seed: int, label: str, fresh: bool, extra=()) -> dict:
    cache = WORK / "runs" / f"{key}--{label}--seed{seed}.json"
    if cache.exists() and not fresh:
        return json.loads(cache.read_text())
    out = WORK / "out" / f"{key}-{label}-{seed}"
    print(f"bench-mosaic: {key} seed {seed} ({label}) ...", flush=True)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "dffn_qgis", "unmix", str(files["input"]), "-p", str(P), "--seed",
                          str(seed), "-o", str(out), "--prefix", "run", "--library", "none", "-q", *extra],
                         cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"bench-mosaic: {key} seed {seed} failed:\n{res.stderr[-3000:]}")
    ev = subprocess.run([sys.executable, "-m", "dffn_qgis", "evaluate", str(out), "--truth", str(files["truth"]),
                         "--truth-endmembers", str(files["endmembers"]), "--json"], cwd=ROOT, capture_output=True,
                        text=True)
    if ev.returncode:
        raise SystemExit(f"bench-mosaic: evaluate {key} failed:\n{ev.stderr[-3000:]}")
    one = json.loads(ev.stdout)["one_to_one"]
    record = json.loads((out / "run_abundances.json").read_text())
    row = {"key": key, "seed": seed, "label": label, "seconds": round(seconds, 1), "sad": one["mean_sad_rad"],
           "rmse": one["mean_rmse"], "worst_sad": max(one["sad_rad"]), "method": record.get("method"),
           "windows": len(record.get("scalable", {}).get("training_windows", [])),
           "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "cpu": _cpu_name()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(row))
    print(f"bench-mosaic: {key} seed {seed}: {seconds:.0f} s, SAD {row['sad']:.4f}, RMSE {row['rmse']:.4f}, "
          f"worst SAD {row['worst_sad']:.3f}", flush=True)
    return row


def exact_reference(name: str, seed: int) -> dict:
    """The exact path on the original scene: the bench-scenes run (own abundances)."""
    path = ROOT / ".bench" / "scenes-runs" / f"{name}--{method_key('dffn', DEFAULT_PRESET, {})}--seed{seed}.json"
    if not path.exists():
        subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_scenes.py"), "--scenes", name, "--seeds",
                        str(seed), "--paper-seeds", "", "--no-doc"], cwd=ROOT, check=True, capture_output=True)
    rec = json.loads(path.read_text())
    return {"sad": rec["mean_sad_rad"], "rmse": rec.get("own_mean_rmse", rec["mean_rmse"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", default="samson,G01-enmap-4")
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--large", action="store_true", help="also the generated 1000 x 1000 x 224 scene")
    ap.add_argument("--large-seeds", default="", help="seeds of the large scene (default: --seeds)")
    ap.add_argument("--label", default="current", help="names the code measured (cache key)")
    ap.add_argument("--fresh", action="store_true")
    ap.add_argument("--no-doc", action="store_true")
    ap.add_argument("--unmix-args", default="", help="more arguments for every run's 'unmix' (name them in --label)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s]
    extra = shlex.split(args.unmix_args)
    med = statistics.median
    lines = ["| scene | path | seeds | median mean SAD (rad) | median mean RMSE | worst seed's largest SAD | "
             "ratio to exact: SAD / RMSE | median time (s) |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name in [s for s in args.scenes.split(",") if s]:
        why = scenes.available(name)
        if why:
            lines.append(f"| {name} | skipped ({why}) | | | | | | |")
            continue
        files = mosaic_files(name, args.copies)
        P = scenes.load(name).abundances.shape[0]
        key = f"{name}_x{args.copies}"
        runs = [run_unmix(key, files, P, s, args.label, args.fresh, extra) for s in seeds]
        exact = [exact_reference(name, s) for s in seeds]
        ms, mr = med(r["sad"] for r in runs), med(r["rmse"] for r in runs)
        es, er = med(e["sad"] for e in exact), med(e["rmse"] for e in exact)
        lines.append(f"| {name}, original | exact | {len(exact)} | {es:.4f} | {er:.4f} | | | |")
        lines.append(f"| {key} ({runs[0]['method']}) | default | {len(runs)} | {ms:.4f} | {mr:.4f} | "
                     f"{max(r['worst_sad'] for r in runs):.3f} | {ms / es:.2f} / {mr / er:.2f} | "
                     f"{med(r['seconds'] for r in runs):.0f} |")
    if args.large:
        large_seeds = [int(s) for s in args.large_seeds.split(",") if s] or seeds
        runs = [run_unmix("scene1000", large_files(), 4, s, args.label, args.fresh, extra) for s in large_seeds]
        lines.append(f"| generated 1000 x 1000 x 224 ({runs[0]['method']}) | default | {len(runs)} | "
                     f"{med(r['sad'] for r in runs):.4f} | {med(r['rmse'] for r in runs):.4f} | "
                     f"{max(r['worst_sad'] for r in runs):.3f} | | {med(r['seconds'] for r in runs):.0f} |")
    header = (f"Written by `python scripts/bench_mosaic.py {' '.join(sys.argv[1:])}` on "
              f"{datetime.now(timezone.utc).strftime('%Y-%m-%d')}; {_cpu_name()}, 2 cores. Runs cached in "
              f".bench/mosaic/runs/ keep their own date and CPU.")
    table = "\n".join([header, "", *lines])
    publish(table, START, END, args.no_doc, "bench-mosaic")
    return 0


if __name__ == "__main__":
    sys.exit(main())

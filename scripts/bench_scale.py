"""``make bench-scale``: time and peak memory of whole command-line runs against image size.

Generates (once, into .bench/scale/) a 1000 x 1000 x 224 float32 tiled GeoTIFF with known truth
(scripts/make_large_scene.py), 2 x 2 and 4 x 4 mosaics of it as VRTs (2000 and 4000 pixels a
side, the input never held in memory) and smaller GeoTIFFs; runs
``python -m dffn_qgis unmix`` on each under ``/usr/bin/time`` (wall time and peak resident
memory of the whole process, start-up and writing included), scores it with
``python -m dffn_qgis evaluate`` and writes the table between the scale markers of
docs/BENCHMARKS.md, with least-squares fits of time and memory against the pixel count.
"""
import argparse
import json
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import publish  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "scale"
START, END = "<!-- scale:start (written by scripts/bench_scale.py) -->", "<!-- scale:end -->"
BANDS, ENDMEMBERS, SEED = 224, 4, 1


def scene_for(size: int) -> dict:
    """The input and truth files of a size (generated when missing)."""
    WORK.mkdir(parents=True, exist_ok=True)
    if size in (2000, 4000):
        factor = size // 1000
        base = WORK / "scene1000.tif"
        vrt = WORK / f"scene1000_x{factor}.vrt"
        if not vrt.exists():
            _generate(base, 1000, ["--tile-vrt", str(factor)])
        return {"input": vrt, "truth": WORK / f"scene1000_x{factor}_truth_abundances.vrt",
                "truth_endmembers": WORK / "scene1000_truth_endmembers.csv"}
    path = WORK / f"scene{size}.tif"
    if not path.exists():
        _generate(path, size, [])
    return {"input": path, "truth": WORK / f"scene{size}_truth_abundances.tif",
            "truth_endmembers": WORK / f"scene{size}_truth_endmembers.csv"}


def _generate(path: Path, size: int, extra) -> None:
    print(f"bench-scale: generating {path.name} ...", flush=True)
    subprocess.run([sys.executable, str(ROOT / "scripts" / "make_large_scene.py"), str(path), "--size", str(size),
                    "--bands", str(BANDS), "--endmembers", str(ENDMEMBERS), "--seed", str(SEED), "-q", *extra],
                   check=True)


def run_size(size: int, reuse: bool, extra_args) -> dict:
    cache = WORK / f"run{size}.json"
    if reuse and cache.exists():
        return json.loads(cache.read_text())
    files = scene_for(size)
    out = WORK / f"out{size}"
    print(f"bench-scale: unmixing {size} x {size} ...", flush=True)
    cmd = ["/usr/bin/time", "-f", "%e %M", sys.executable, "-m", "dffn_qgis", "unmix", str(files["input"]),
           "-p", str(ENDMEMBERS), "-o", str(out), "--seed", str(SEED), "--prefix", "scene", "-q", *extra_args]
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.returncode:
        raise SystemExit(f"unmix {size} failed:\n{res.stderr[-3000:]}")
    wall, peak_kb = res.stderr.strip().splitlines()[-1].split()
    record = json.loads((out / "scene_abundances.json").read_text())          # --prefix scene
    ev = subprocess.run([sys.executable, "-m", "dffn_qgis", "evaluate", str(out), "--truth", str(files["truth"]),
                         "--truth-endmembers", str(files["truth_endmembers"]), "--json"],
                        cwd=ROOT, capture_output=True, text=True)
    if ev.returncode:
        raise SystemExit(f"evaluate {size} failed:\n{ev.stderr[-3000:]}")
    scores = json.loads(ev.stdout)
    row = {"size": size, "pixels": size * size, "seconds": float(wall), "peak_bytes": int(peak_kb) * 1024,
           "estimate_bytes": record.get("memory_estimate", {}).get("peak_bytes"),
           "method": record.get("method"), "timings": record.get("timings", {}),
           "landmarks": record.get("scalable", {}).get("landmarks"),
           "ffm_error": record.get("scalable", {}).get("ffm_relative_error"),
           "epochs": record.get("epochs_run"), "scores": _mean_scores(scores),
           "measured": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    cache.write_text(json.dumps(row))
    print(f"bench-scale: {size}: {row['seconds']:.0f} s, peak {row['peak_bytes'] / 2 ** 30:.2f} GiB, "
          f"RMSE {row['scores']['rmse']:.4f}", flush=True)
    return row


def _mean_scores(scores: dict) -> dict:
    one = scores.get("one_to_one", scores)
    return {"sad": float(one["mean_sad_rad"]), "rmse": float(one["mean_rmse"])}


def _fit(x, y):
    """Least squares y = a + b x and its R^2."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(x, y, 1)
    pred = a + b * x
    r2 = 1 - ((y - pred) ** 2).sum() / max(((y - y.mean()) ** 2).sum(), 1e-30)
    return a, b, r2


def _seconds(value) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def table(rows) -> str:
    gib = 2 ** 30
    lines = ["| size | pixels | path | wall time (s) | time per pixel (us) | peak memory (GiB) | estimated (GiB) | "
             "estimate / peak | fusion / training / tiles / writing (s) | landmarks (error) | epochs | "
             "mean SAD rad | mean RMSE | measured |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        t = r["timings"]
        est = r["estimate_bytes"]
        lines.append(
            f"| {r['size']} x {r['size']} | {r['pixels']:,} | {r['method']} | {r['seconds']:.0f} | "
            f"{1e6 * r['seconds'] / r['pixels']:.0f} | {r['peak_bytes'] / gib:.2f} | "
            f"{(est or 0) / gib:.2f} | {(est or 0) / r['peak_bytes']:.2f} | "
            f"{t.get('ffm_s', 0):.0f} / {t.get('training_s', 0):.0f} / {t.get('tiles_s', 0):.0f} / "
            f"{_seconds(t.get('write_s'))} | {r['landmarks']} ({(r['ffm_error'] or 0):.1e}) | {r['epochs']} | "
            f"{r['scores']['sad']:.4f} | {r['scores']['rmse']:.4f} | {r['measured']} |")
    if len(rows) >= 3:
        n = [r["pixels"] for r in rows]
        a, b, r2 = _fit(n, [r["seconds"] for r in rows])
        c, d, s2 = _fit(n, [r["peak_bytes"] / gib for r in rows])
        lines += ["", f"Least-squares fits over these sizes: time = {a:.0f} s + {b * 1e6:.1f} us x pixels "
                      f"(R^2 = {r2:.4f}); peak memory = {c:.2f} GiB + {d * 1e6 * 1024:.0f} KiB per 1000 pixels "
                      f"(R^2 = {s2:.4f})."]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="250,500,1000,2000,4000")
    ap.add_argument("--reuse", action="store_true", help="take cached runs from .bench/scale/")
    ap.add_argument("--no-doc", action="store_true", help="print the table instead of writing the document")
    ap.add_argument("unmix_args", nargs="*", help="extra arguments for 'unmix' (after --)")
    args = ap.parse_args()
    rows = [run_size(int(s), args.reuse, args.unmix_args) for s in args.sizes.split(",")]
    command = " ".join(["python scripts/bench_scale.py", *sys.argv[1:]])
    generated = "\n".join([
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d}; machine: {platform.machine()}, "
        f"{platform.platform()}, 2 cores, CPU only. Each row is one `python -m dffn_qgis unmix INPUT -p "
        f"{ENDMEMBERS} --seed {SEED}` process with default settings under `/usr/bin/time` (wall time and peak "
        f"resident memory of the whole process: start-up, reading, fusion, training, tiles and writing). "
        f"Inputs: generated {BANDS}-band float32 tiled GeoTIFFs with known truth (`scripts/make_large_scene.py`); "
        f"2000 and 4000 are 2 x 2 and 4 x 4 VRT mosaics of the 1000 x 1000 file. Scores are against that "
        f"truth (one-to-one matching).", "", table(rows)])
    publish(generated, START, END, args.no_doc, "bench-scale")


if __name__ == "__main__":
    main()

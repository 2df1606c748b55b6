"""``make bench-count``: the endmember count on generated scenes that were not used to choose it.

The development scenes' counts are in the table of ``make bench-scenes``; the count's rule was chosen
on those. This script draws ``--scenes`` more scenes at random (``benchmarks.scenes.held_out_spec``:
every sensor grid, 3-8 materials, 50-150 pixels a side, SNR 20-40 dB, with and without pure pixels,
illumination, nodata; cached under ``.bench/scenes/``) and writes each estimator's hits against the
true count to docs/BENCHMARKS.md. A few seconds a scene on 2 cores.
"""
import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from bench import _cores, _cpu_name, publish  # noqa: E402
from benchmarks import scenes  # noqa: E402

START, END = "<!-- bench-count:start (written by make bench-count) -->", "<!-- bench-count:end -->"
ESTIMATORS = (("recommended", "recommended"), ("rmt", "noise edge (RMT)"), ("hysime", "HySime (regression)"),
              ("hysime_spatial", "HySime (neighbour noise)"), ("hfc", "HFC (1e-3)"))


def main():
    from datetime import date

    from dffn_qgis.core.io.raster_source import ArraySource
    from dffn_qgis.core.method.endmember_count import count_source

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scenes", type=int, default=40, help="how many held-out scenes (default 40)")
    ap.add_argument("--no-doc", action="store_true", help="print instead of writing docs/BENCHMARKS.md")
    args = ap.parse_args()
    t0 = time.perf_counter()
    rows, unmade, k = [], [], 0
    while len(rows) < args.scenes:
        spec = scenes.held_out_spec(k)
        k += 1
        try:
            bench = scenes.generated_scene(spec)
        except ValueError as error:
            unmade.append(f"{spec.name} ({error})")
            continue
        estimate = count_source(ArraySource(bench.scene))
        truth = bench.endmembers.shape[1]
        rows.append((spec, truth, {key: getattr(estimate, key) for key, _ in ESTIMATORS}))
        print(f"{spec.name}: true {truth}, " + ", ".join(f"{key} {v}" for key, v in rows[-1][2].items()), flush=True)

    def tally(key):
        pairs = [(truth, found[key]) for _, truth, found in rows if found[key] is not None]
        exact = sum(t == e for t, e in pairs)
        near = sum(abs(t - e) <= 1 for t, e in pairs)
        over = sum(e > t for t, e in pairs)
        return f"| {dict(ESTIMATORS)[key]} | {exact} of {len(pairs)} | {near} of {len(pairs)} | {over} |"

    doc = [f"Written by `make bench-count` (`python scripts/bench_count.py --scenes {args.scenes}`) on "
           f"{date.today().isoformat()}; {_cpu_name()}, {_cores()} cores; {time.perf_counter() - t0:.0f} s.",
           "", f"{len(rows)} scenes drawn by `benchmarks.scenes.held_out_spec` (seed 777), none of them used to "
           "choose the count's rule; " + (f"{len(unmade)} draws could not be made and were passed over "
                                         f"({'; '.join(unmade)})." if unmade else "every draw was made."),
           "", "| estimator | exact | within one | above the truth |", "| --- | --- | --- | --- |",
           *[tally(key) for key, _ in ESTIMATORS], "", "<details><summary>Every scene</summary>", "",
           "| scene | " + " | ".join(label for _, label in [("true", "true count"), *ESTIMATORS]) + " |",
           "| --- " * (len(ESTIMATORS) + 2) + "|"]
    for spec, truth, found in rows:
        cells = " | ".join(str(found[key]) for key, _ in ESTIMATORS)
        doc.append(f"| {spec.name}: {spec.describe()} | {truth} | {cells} |")
    doc += ["", "</details>"]
    publish("\n".join(doc), START, END, args.no_doc, "bench-count")


if __name__ == "__main__":
    main()

"""``make bench``: the presets on Samson (per seed) and the fast preset against VCA + FCLS on
synthetic scenes of several kinds; results to docs/BENCHMARKS.md.

Every run is its own process (scripts/bench_run.py) so that its peak memory is its own. Runs are
cached in .bench/ (git-ignored): ``--reuse`` takes a cached run instead of repeating it, so that a
long benchmark can be completed in parts; each row says when it was measured.
"""
import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".bench"
DOC = ROOT / "docs" / "BENCHMARKS.md"
SAMSON = ROOT.parent / "shared" / "data" / "samson" / "Samson.mat"

# Synthetic scenes: other band counts, endmember counts, with and without pure pixels.
SYNTHETIC = [
    dict(name="S1", height=64, width=64, bands=50, endmembers=3, pure=True, snr=30),
    dict(name="S2", height=64, width=64, bands=200, endmembers=5, pure=False, snr=30),
    dict(name="S3", height=72, width=72, bands=120, endmembers=6, pure=True, snr=25),
    dict(name="S4", height=80, width=60, bands=224, endmembers=4, pure=False, snr=35),
]


def run(key, argv, reuse):
    path = CACHE / f"{key}.json"
    if reuse and path.exists():
        return json.loads(path.read_text())
    print(f"bench: {key} ...", flush=True)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_run.py"), *argv],
                         capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"bench run {key} failed:\n{out.stderr[-3000:]}")
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    rec["measured"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    CACHE.mkdir(exist_ok=True)
    path.write_text(json.dumps(rec))
    print(f"bench: {key}: {rec['seconds']:.1f} s, mean SAD {rec['mean_sad_rad']:.4f} rad, "
          f"mean RMSE {rec['mean_rmse']:.4f} ({time.perf_counter() - t0:.0f} s with start-up)", flush=True)
    return rec


def _loss(r):
    return f"{r['final_loss']:.4f}" if "final_loss" in r else ""


def fmt_rad_deg(v):
    return f"{v:.4f} ({v * 57.29578:.2f} deg)"


def samson_table(rows):
    lines = ["| seed | time (s) | peak memory (MB) | epochs | final loss | SAD per endmember (rad) | "
             "mean SAD rad (deg) | RMSE per endmember | mean RMSE | ref. matching: mean SAD / RMSE | measured |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['seconds']:.1f} | {r['peak_mb']:.0f} | {r.get('epochs_run', '')} | "
                     f"{_loss(r)} | {', '.join(f'{v:.4f}' for v in r['sad_rad'])} | "
                     f"{fmt_rad_deg(r['mean_sad_rad'])} | {', '.join(f'{v:.4f}' for v in r['rmse'])} | "
                     f"{r['mean_rmse']:.4f} | {r['ref_mean_sad_rad']:.4f} / {r['ref_mean_rmse']:.4f} | "
                     f"{r['measured']} |")
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    lines.append(f"| **median** | {med('seconds'):.1f} | {med('peak_mb'):.0f} | | | | "
                 f"**{fmt_rad_deg(med('mean_sad_rad'))}** | | **{med('mean_rmse'):.4f}** | | |")
    lines.append(f"| **worst** | {max(r['seconds'] for r in rows):.1f} | "
                 f"{max(r['peak_mb'] for r in rows):.0f} | | | | "
                 f"{fmt_rad_deg(max(r['mean_sad_rad'] for r in rows))} | | "
                 f"{max(r['mean_rmse'] for r in rows):.4f} | | |")
    return lines


def guard_lines(scalable, exact):
    med = lambda rows, k: statistics.median(r[k] for r in rows)  # noqa: E731
    out = []
    for key, label in (("mean_sad_rad", "mean SAD"), ("mean_rmse", "mean RMSE")):
        a, b = med(scalable, key), med(exact, key)
        out.append(f"- median {label}: scalable {a:.4f}, exact {b:.4f}: ratio {a / b:.3f} "
                   f"({'within' if a <= 1.1 * b else 'NOT within'} 10%)")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--presets", default="fast,paper")
    ap.add_argument("--seeds", default="1,2,3,4,5", help="seeds of the fast preset and the baseline on Samson")
    ap.add_argument("--paper-seeds", default="1,2,3,4,5", help="seeds of the paper preset (about 10 min each)")
    ap.add_argument("--synthetic-seeds", default="1,2", help="seeds of each method on each synthetic scene")
    ap.add_argument("--scalable-seeds", default="1,2,3,4,5",
                    help="seeds of the fast preset forced onto the scalable path on Samson (accuracy guard)")
    ap.add_argument("--no-synthetic", action="store_true")
    ap.add_argument("--reuse", action="store_true", help="take cached runs from .bench/ instead of repeating them")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    paper_seeds = [int(s) for s in args.paper_seeds.split(",")]
    synthetic_seeds = [int(s) for s in args.synthetic_seeds.split(",")]
    presets = [p for p in args.presets.split(",") if p]
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d")

    command = " ".join(["python scripts/bench.py", *sys.argv[1:]])
    doc = ["",
           f"Written by `make bench` (this run: `{command}`) on {started}.", "",
           f"Machine: {platform.machine()}, {_cpu_name()}, {_cores()} cores, {platform.platform()}; "
           f"Python {platform.python_version()}, torch {_torch_version()}; CPU only.", "",
           "Each run is a separate process: time is the unmixing itself (FFM + training + inference, "
           "not the Python start-up or reading the file); peak memory is the process's maximum "
           "resident set size. Scores follow the paper's protocol (abundances normalised to sum to "
           "one, endmembers divided by their maximum): SAD in radians (degrees in brackets), "
           "abundance RMSE, one-to-one (Hungarian on SAD) matching; the reference code's matching "
           "(each estimate takes its closest truth) is shown beside it.", ""]
    if SAMSON.exists():
        for preset in presets:
            rows = [run(f"samson-{preset}-seed{s}", ["samson", "--preset", preset, "--seed", str(s)], args.reuse)
                    for s in (paper_seeds if preset == "paper" else seeds)]
            doc += [f"## Samson, preset `{preset}`", "", *samson_table(rows), ""]
        scalable_seeds = [int(s) for s in args.scalable_seeds.split(",") if s]
        if scalable_seeds and "fast" in presets:
            rows = [run(f"samson-scalable-seed{s}", ["samson", "--preset", "fast", "--seed", str(s), "--override",
                                                     json.dumps({"method": "scalable"})], args.reuse)
                    for s in scalable_seeds]
            exact = [json.loads((CACHE / f"samson-fast-seed{s}.json").read_text()) for s in scalable_seeds]
            doc += ["## Samson, preset `fast` forced onto the scalable path (accuracy guard)", "",
                    "Approximate fusion, training on 9 windows of 32 x 32 pixels, abundances tile by tile "
                    "(`method=scalable`); against the exact path's runs of the same seeds above.", "",
                    *samson_table(rows), "", *guard_lines(rows, exact), ""]
        vca = [run(f"samson-vca-seed{s}", ["samson", "--method", "vca", "--seed", str(s)], args.reuse)
               for s in seeds]
        doc += ["## Samson, VCA + FCLS baseline", "", *samson_table(vca), ""]
    else:
        doc += [f"Samson not found at {SAMSON}: Samson benchmarks skipped.", ""]

    if not args.no_synthetic:
        doc += ["## Synthetic scenes: the fast preset against VCA + FCLS", "",
                "Scenes from `dffn_qgis.core.eval.synthetic` (analytic material spectra over 400-2500 nm, "
                "smooth random abundance fields, Gaussian noise at the given SNR). Median over the seeds.",
                "", "| scene | size | bands | endmembers | pure pixels | SNR dB | method | median time (s) | "
                "median mean SAD rad (deg) | median mean RMSE | worst mean SAD rad |",
                "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for sc in SYNTHETIC:
            base = ["synthetic", "--height", str(sc["height"]), "--width", str(sc["width"]),
                    "--bands", str(sc["bands"]), "--endmembers", str(sc["endmembers"]), "--snr", str(sc["snr"])]
            base += ["--pure"] if sc["pure"] else []
            for method in ("dffn", "vca"):
                rows = [run(f"{sc['name']}-{method}-seed{s}", base + ["--method", method, "--seed", str(s)],
                            args.reuse) for s in synthetic_seeds]
                med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
                label = "DFFN fast" if method == "dffn" else "VCA + FCLS"
                doc.append(f"| {sc['name']} | {sc['height']} x {sc['width']} | {sc['bands']} | {sc['endmembers']} | "
                           f"{'yes' if sc['pure'] else 'no (max 0.8)'} | {sc['snr']} | {label} | "
                           f"{med('seconds'):.1f} | {fmt_rad_deg(med('mean_sad_rad'))} | {med('mean_rmse'):.4f} | "
                           f"{max(r['mean_sad_rad'] for r in rows):.4f} |")
        doc.append("")
    write_doc("\n".join(doc[1:]).strip())
    print(f"bench: wrote {DOC}")


START, END = "<!-- bench:start (written by make bench) -->", "<!-- bench:end -->"


def write_doc(generated: str, start: str = START, end: str = END) -> None:
    """Replace the part of docs/BENCHMARKS.md between ``start`` and ``end`` (appended when the
    markers are missing), keeping the hand-written text around it."""
    text = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    if start not in text or end not in text:
        text = text.rstrip() + "\n\n" + start + "\n" + end + "\n"
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    DOC.write_text(head + start + "\n" + generated + "\n" + end + tail)


def publish(generated: str, start: str, end: str, print_only: bool, what: str) -> None:
    """Print ``generated``, or write it between ``start`` and ``end`` of docs/BENCHMARKS.md."""
    if print_only:
        print(generated)
    else:
        write_doc(generated, start, end)
        print(f"{what}: wrote {DOC}")


def _cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _cores():
    import os
    return len(os.sched_getaffinity(0))


def _torch_version():
    import torch
    return torch.__version__


if __name__ == "__main__":
    main()

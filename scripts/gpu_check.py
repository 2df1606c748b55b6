"""The GPU path measured on a real GPU (issue "The GPU path, measured on a real GPU").

    python scripts/gpu_check.py                 # on a machine with an NVIDIA GPU (scripts/gpu_check.sh)
    python scripts/gpu_check.py --dry-run       # the same steps on the CPU, small and short

With the default preset and seed 1 it runs, on the GPU: Samson, one development scene (G03, EMIT
grid, from benchmarks/), and a generated 1000 x 1000 x 224 scene (the scalable path); then the GPU
out-of-memory path for real (a memory cap forces a tile size that does not fit), one forward pass
against the CPU's with TensorFloat-32 off and on, and Samson again (does the GPU repeat itself). Last,
Samson and the development scene on the CPU with the same seed, for the largest difference between
the two results. It prints one line per run and, at the end, one JSON summary (also written to
``--out`` after each step). ``--repeat``: only Samson and the development scene, twice each on the
GPU. Budget: under 6 minutes on an H200 host (docs/BENCHMARKS.md, "The GPU path").

Inputs that do not travel to a GPU machine (``../shared`` and the earthlib package) are found in
``--inputs`` (default ``.gpu-inputs/``, git-ignored) when absent: ``--prepare`` writes them there.
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
import torch  # noqa: E402

SAMSON = ROOT.parent / "shared" / "data" / "samson" / "Samson.mat"
DEV_SCENE = "G03-emit-3"


def prepare(inputs: Path) -> None:
    """Copy what the check needs into ``inputs`` (git-ignored; carried to the GPU machine)."""
    import shutil

    from benchmarks import scenes
    inputs.mkdir(parents=True, exist_ok=True)
    if SAMSON.exists():
        shutil.copy(SAMSON, inputs / "Samson.mat")
    bench = scenes.load(DEV_SCENE)
    np.savez_compressed(inputs / f"{DEV_SCENE}.npz", cube=bench.scene.data, valid=bench.scene.valid,
                        abundances=bench.abundances, endmembers=bench.endmembers)
    print(f"gpu-check: inputs written to {inputs}")


def load_samson(inputs: Path):
    from dffn_qgis.core.io.mat_io import read_mat_scene, read_mat_truth
    path = SAMSON if SAMSON.exists() else inputs / "Samson.mat"
    if not path.exists():
        return None
    A, M = read_mat_truth(str(path))
    return read_mat_scene(str(path)), A, M


def load_dev(inputs: Path):
    from dffn_qgis.core.io.scene import Scene
    path = inputs / f"{DEV_SCENE}.npz"
    if not path.exists():
        try:
            from benchmarks import scenes
            bench = scenes.load(DEV_SCENE)
            return bench.scene, bench.abundances, bench.endmembers
        except Exception:      # no earthlib here and no prepared copy
            return None
    z = np.load(path)
    return Scene(data=z["cube"], valid=z["valid"], wavelength_units="nm", source=DEV_SCENE), z["abundances"], z["endmembers"]


def load_large(size: int, bands: int):
    from dffn_qgis.core.eval import synthetic
    from dffn_qgis.core.io.scene import Scene
    s = synthetic.make_scene(size, size, bands, 4, seed=1, snr_db=30, pure_pixels=True)
    cube = s.cube / s.cube.max()
    return Scene(data=cube, valid=np.ones(cube.shape[1:], bool), source="large"), s.abundances, s.endmembers


def one_run(name, scene, A_true, M_true, device, overrides, log):
    from dffn_qgis.core.run.config import params_for
    from dffn_qgis.core.eval.metrics import evaluate, max_normalised_nnls
    from dffn_qgis.core.run.pipeline import unmix_scene
    from dffn_qgis.core.run.progress import Monitor
    P = A_true.shape[0]
    params = params_for(n_endmembers=P, seed=1, device=device, **overrides)
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    messages = []
    t0 = time.perf_counter()
    result = unmix_scene(scene, params, Monitor(info=messages.append))
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    valid = scene.valid
    A_valid = A_true.reshape(P, -1)[:, valid.ravel()]
    scores = evaluate(result.endmembers, result.abundances[:, valid], M_true, A_valid)
    samson_rmse = None
    if name.startswith("samson"):        # Samson's truth convention (docs/BENCHMARKS.md, "abundance scale")
        samson_rmse = evaluate(result.endmembers, max_normalised_nnls(scene.data[:, valid], result.endmembers),
                               M_true, A_valid)["mean_rmse"]
    rec = {"run": name, "device": device, "seconds": round(seconds, 2),
           "gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2 ** 20) if device == "cuda" else None,
           "host_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
           "mean_sad_rad": scores["mean_sad_rad"], "mean_rmse": scores["mean_rmse"],
           "worst_sad_rad": max(v for v in scores["one_to_one"]["sad_rad"] if v is not None),
           "samson_convention_rmse": samson_rmse,
           "epochs": result.record["epochs_run"], "precision": result.record["precision"],
           "method": result.record["method"], "final_loss": result.loss,
           "timings": result.record.get("timings"),
           "fallbacks": [m for m in messages if "out of memory" in m or "splitting" in m]}
    log(json.dumps(rec))
    return rec, result


def difference(a, b) -> dict:
    """Largest differences between two results of the same seed (endmembers max-normalised); the first
    is the GPU's where one is."""
    from dffn_qgis.core.eval.metrics import normalise_endmembers
    E = np.abs(normalise_endmembers(a.endmembers) - normalise_endmembers(b.endmembers)).max()
    A = np.nanmax(np.abs(a.abundances - b.abundances))
    return {"max_abs_endmember_diff": float(E), "max_abs_abundance_diff": float(A),
            "loss_first": a.loss, "loss_second": b.loss}


def oom_check(scene, A_true, M_true, log) -> dict:
    """A tile that cannot fit under a memory cap: the run must split tiles or fall back, and finish."""
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    cap_bytes = 2 * 2 ** 30                                # about 2 GiB of the card
    torch.cuda.set_per_process_memory_fraction(cap_bytes / total)
    try:
        rec, _ = one_run("oom: 2 GiB cap, tile 1024, network abundances", scene, A_true, M_true, "cuda",
                         {"method": "scalable", "tile": 1024, "abundances": "network"}, log)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    rec["forced_fallback_seen"] = bool(rec["fallbacks"])
    return rec


def forward_check(log) -> dict:
    """One forward pass of the network with the same weights on the CPU and on the GPU (a Samson-sized
    input), with TensorFloat-32 off (as runs use it) and on (torch's default for cuDNN convolutions)."""
    from dffn_qgis.core.method.model import DFFN
    torch.manual_seed(1)
    H = W = 95
    L, P = 156, 3
    x = torch.rand(1, L, H, W)
    net = DFFN(L, P, H * W).eval()
    with torch.no_grad():
        ref = [t.double() for t in net(x)]
        out = {}
        for tf32 in (False, True):
            torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
            gpu = [t.double().cpu() for t in net.to("cuda")(x.to("cuda"))]
            net.to("cpu")
            rel = [float((g - r).abs().max() / r.abs().max()) for g, r in zip(gpu, ref)]
            out["tf32_on" if tf32 else "tf32_off"] = dict(zip(("A", "Y1", "E"), rel))
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    log("forward pass, largest GPU-CPU difference relative to the largest value: " + json.dumps(out))
    return out


def profile_samson(inputs: Path, device: str, log) -> dict:
    """Samson, 100 epochs (no stop, no restart) under torch's profiler: the operators that take the
    most device and host time, and the time per epoch (after a 20-epoch warm-up run)."""
    from torch.profiler import ProfilerActivity, profile
    loaded = load_samson(inputs)
    if loaded is None:
        log("profile: Samson not found")
        return {}
    short = {"patience": 0, "restarts": 0}
    one_run("samson warm-up, 20 epochs", *loaded, device, {**short, "epochs": 20}, log)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profile(activities=activities) as prof:
        rec, _ = one_run("samson, 100 epochs, profiled", *loaded, device, {**short, "epochs": 100}, log)
    sort = "self_cuda_time_total" if device == "cuda" else "self_cpu_time_total"
    table = prof.key_averages().table(sort_by=sort, row_limit=20)
    print(table, flush=True)
    host = prof.key_averages().table(sort_by="cpu_time_total", row_limit=12)
    print(host, flush=True)
    return {"training_s_per_epoch": rec["timings"]["training_s"] / 100, "by_device_time": table,
            "by_host_time": host}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="CPU only, 20 epochs, a 240 x 240 large scene")
    ap.add_argument("--prepare", action="store_true", help="write the inputs for a GPU machine and stop")
    ap.add_argument("--inputs", default=str(ROOT / ".gpu-inputs"))
    ap.add_argument("--out", default="", help="write the JSON summary here too")
    ap.add_argument("--profile", action="store_true",
                    help="only a 100-epoch Samson training under torch's profiler: where an epoch's time goes")
    ap.add_argument("--repeat", action="store_true",
                    help="only Samson and the development scene, each twice on the GPU: does it repeat itself")
    args = ap.parse_args()
    inputs = Path(args.inputs)
    if args.prepare:
        prepare(inputs)
        return 0
    if not args.dry_run and not torch.cuda.is_available():
        print("gpu-check: torch sees no CUDA device (torch %s); nothing to measure" % torch.__version__)
        return 2
    gpu = "cpu" if args.dry_run else "cuda"
    overrides = {"epochs": 20, "patience": 0, "restarts": 0} if args.dry_run else {}
    size = 240 if args.dry_run else 1000     # both above exact_limit: the scalable path
    t_start = time.perf_counter()
    log = lambda line: print("gpu-check: " + line, flush=True)     # noqa: E731
    summary = {"torch": torch.__version__, "dry_run": args.dry_run,
               "gpu": torch.cuda.get_device_name(0) if gpu == "cuda" else None, "runs": [], "cpu_vs_gpu": {}}
    save = lambda: Path(args.out).write_text(json.dumps(summary, indent=1)) if args.out else None  # noqa: E731
    if args.profile:
        summary["profile"] = profile_samson(inputs, gpu, log)
        save()
        return 0
    loaders = (("samson", lambda: load_samson(inputs)), (DEV_SCENE, lambda: load_dev(inputs)))
    if args.repeat:
        summary["repeat_same_device"] = {}
        for name, loader in loaders:
            scene = loader()
            if scene is None:
                continue
            (rec_a, first), (rec_b, second) = (one_run(name, *scene, gpu, overrides, log) for _ in range(2))
            summary["runs"] += [rec_a, rec_b]
            summary["repeat_same_device"][name] = difference(first, second)
            log(f"{name} twice on {gpu}: {json.dumps(summary['repeat_same_device'][name])}")
            save()
        summary["total_s"] = round(time.perf_counter() - t_start, 1)
        save()
        return 0
    # the GPU runs first, the CPU runs they are compared with last: a time-out loses the least
    loaded, results = {}, {}
    for name, loader in loaders:
        loaded[name] = loader()
        if loaded[name] is None:
            log(f"{name}: input not found, skipped (run --prepare where ../shared and earthlib exist)")
            continue
        rec, results[name] = one_run(name, *loaded[name], gpu, overrides, log)
        summary["runs"].append(rec)
        save()
    large = load_large(size, 224)
    rec, _ = one_run(f"generated {size} x {size} x 224", *large, gpu, overrides, log)
    summary["runs"].append(rec)
    save()
    if gpu == "cuda":
        summary["oom"] = oom_check(*large, log)
        summary["forward_pass"] = forward_check(log)
        save()
    else:
        log("oom and forward pass: need a GPU (skipped in the dry run)")
    if loaded.get("samson") is not None:          # the same seed again on the same device
        rec, again = one_run("samson (again)", *loaded["samson"], gpu, overrides, log)
        summary["runs"].append(rec)
        summary["repeat_same_device"] = difference(again, results["samson"])
        log(f"samson twice on {gpu}: {json.dumps(summary['repeat_same_device'])}")
        save()
    for name, res_g in results.items():
        rec, res_c = one_run(name, *loaded[name], "cpu", overrides, log)
        summary["runs"].append(rec)
        summary["cpu_vs_gpu"][name] = difference(res_g, res_c)
        log(f"{name}: {json.dumps(summary['cpu_vs_gpu'][name])}")
        save()
    summary["total_s"] = round(time.perf_counter() - t_start, 1)
    print(json.dumps(summary, indent=1))
    save()
    return 0


if __name__ == "__main__":
    sys.exit(main())

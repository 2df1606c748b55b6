"""Command line: ``python -m dffn_qgis unmix ...`` and ``python -m dffn_qgis evaluate ...``.

Bad input ends with one line on stderr and exit code 2 (argument errors included; a file
system error while writing, such as a full disk, too); Ctrl-C cancels cleanly (exit 130) and
leaves no partial outputs. Any other failure is a fault of the program: one line and exit code 1,
with the traceback only when the environment variable ``DFFN_DEBUG`` is set.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .config import ABUNDANCE_SOURCES, DEFAULT_PRESET, METHODS, PRESETS, params_for
from .errors import Cancelled, InputError

EXIT_FAULT, EXIT_INPUT, EXIT_CANCELLED = 1, 2, 130


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(EXIT_INPUT, f"dffn: error: {' '.join(str(message).split())} "
                              f"(see {self.prog} --help)\n")


class ProgressBar:
    """A one-line progress bar on stderr (plain lines every 10% when stderr is not a terminal)."""

    def __init__(self, stream=None, enabled: bool = True):
        # sys.stderr looked up now, not at import: it may have been redirected since
        self.stream, self.enabled = stream if stream is not None else sys.stderr, enabled
        self.tty = self.stream.isatty()
        self.last_decile = -1
        self.t0 = time.perf_counter()

    def __call__(self, fraction: float, message: str) -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        if self.tty:
            filled = int(30 * fraction)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}% "
                              f"{elapsed:6.1f}s  {message[:60]:<60}")
            self.stream.flush()
        elif int(10 * fraction) > self.last_decile:
            self.last_decile = int(10 * fraction)
            self.stream.write(f"{100 * fraction:5.1f}% {elapsed:6.1f}s {message}\n")

    def info(self, message: str) -> None:
        if self.enabled:
            self.stream.write(("\r\033[K" if self.tty else "") + message + "\n")
            self.stream.flush()


def _band_list(text: str) -> List[int]:
    """``"1-10,15,20-30"`` -> band numbers."""
    bands: List[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                bands.extend(range(lo, hi + 1))
            elif part:
                bands.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a band list: {text!r} (use e.g. 1-10,15,20-30)")
    return bands


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m dffn_qgis",
        description="DFFN hyperspectral unmixing (Tao et al., IEEE TGRS 2024) on any raster GDAL reads.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    u = sub.add_parser("unmix", help="unmix a raster into endmember spectra and abundance maps",
                       description="Unmix INPUT (any GDAL raster, or a .mat with Y) and write abundance "
                                   "GeoTIFFs, endmember CSV/ENVI library, plot, HTML report, error map "
                                   "and a JSON record of the run into --output-dir.")
    u.add_argument("input", metavar="INPUT", help="raster file (GeoTIFF, ENVI, VRT, ...) or MATLAB .mat file")
    u.add_argument("-p", "--endmembers", type=int, required=True, metavar="P",
                   help="number of endmembers (pure materials) to find, at least 2")
    u.add_argument("-o", "--output-dir", required=True, metavar="DIR",
                   help="folder for the outputs (created if missing; existing files are replaced only "
                        "when the run succeeds)")
    u.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                   help="'fast' (default): cosine learning-rate schedule, at most 600 epochs, stops when converged; "
                        "'paper': the published setting (1500 epochs, one start)")
    u.add_argument("--device", default=None, metavar="DEV",
                   help="auto (default: CUDA when available, else CPU), cpu, cuda or cuda:N")
    u.add_argument("--seed", type=int, default=None, help="random seed (default 1); same seed, same result")
    u.add_argument("--bands", type=_band_list, default=None, metavar="LIST",
                   help="1-based bands to use, e.g. 1-100,120-150 (default: all except bands flagged bad)")
    u.add_argument("--prefix", default=None, help="file name prefix of the outputs (default: input's name)")
    g = u.add_argument_group("advanced (default: the preset's value)")
    g.add_argument("--epochs", type=int, default=None, help="maximum training epochs of the kept start")
    g.add_argument("--lr", type=float, default=None, help="Adam learning rate")
    g.add_argument("--starts", type=int, default=None, help="short starts tried; the lowest-loss one is kept")
    g.add_argument("--start-epochs", type=int, default=None, help="epochs of each short start")
    g.add_argument("--patience", type=int, default=None,
                   help="stop when the loss has not improved for this many epochs (0: never)")
    g.add_argument("--restarts", type=int, default=None,
                   help="fresh starts allowed when training gets stuck (the patience rule fires in the first "
                        "half of the schedule); the run with the lowest loss is kept")
    g.add_argument("--w", type=float, default=None, help="fusion weight of the spectral term, in [0, 1]")
    g.add_argument("--kernel", type=int, default=None, help="convolution kernel size (odd)")
    g.add_argument("--a", type=float, default=None, help="weight of the reconstruction angle loss")
    g.add_argument("--b", type=float, default=None, help="weight of the abundance constraints loss")
    g.add_argument("--c", type=float, default=None, help="weight of the two reconstructions' agreement loss")
    g.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default=None,
                   help="training precision; auto uses bfloat16 only where the hardware has it")
    g.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: torch's choice)")
    g.add_argument("--method", choices=list(METHODS), default=None,
                   help="exact: the published method on the whole image; scalable: approximate fusion, "
                        "training on windows, abundances tile by tile (bounded memory); auto (default): "
                        "exact up to --exact-limit pixels")
    g.add_argument("--exact-limit", type=int, default=None,
                   help="pixels up to which 'auto' uses the exact method (default 40000, i.e. 200 x 200)")
    g.add_argument("--landmarks", type=int, default=None,
                   help="scalable path: landmark pixels of the approximate spatial similarity (first try; "
                        "doubled until the measured error is below --ffm-tolerance)")
    g.add_argument("--ffm-tolerance", type=float, default=None,
                   help="scalable path: accepted relative error of the approximate spatial term (default 1e-3)")
    g.add_argument("--abundances", choices=list(ABUNDANCE_SOURCES), default=None,
                   help="network: the abundance module's output (as published); refined: each pixel's "
                        "non-negative least-squares fit on the learned endmembers, the abundances that "
                        "minimise the loss's reconstruction angle")
    g.add_argument("--train-windows", type=int, default=None, help="scalable path: training windows (default 9)")
    g.add_argument("--window", type=int, default=None, help="scalable path: training window side (default 32)")
    g.add_argument("--tile", type=int, default=None,
                   help="scalable path: tile side for the abundances (default 256; smaller if memory is short)")
    u.add_argument("-q", "--quiet", action="store_true", help="no progress bar or log lines")

    e = sub.add_parser("evaluate", help="score a result folder against ground truth",
                       description="Score the outputs of 'unmix' in OUTPUT_DIR against ground truth: SAD per "
                                   "endmember (radians and degrees) and abundance RMSE, with one-to-one "
                                   "(Hungarian) matching and the reference code's matching.")
    e.add_argument("output_dir", metavar="OUTPUT_DIR", help="folder written by 'unmix'")
    e.add_argument("--truth", required=True,
                   help="a .mat with Y/A/M (like Samson.mat), or a truth abundance raster "
                        "(*_truth_abundances.tif, endmember CSV beside it), or a folder holding both")
    e.add_argument("--truth-endmembers", default=None, help="endmember CSV of the truth, if not beside it")
    e.add_argument("--convention", choices=["fractions", "max-normalised-nnls"], default="fractions",
                   help="fractions: score the run's own abundances (default); max-normalised-nnls: re-derive "
                        "them from the run's endmembers as Samson's truth was made (needs a .mat truth with Y)")
    e.add_argument("--json", action="store_true", help="print the scores as JSON")
    return parser


def _run_unmix(args) -> int:
    from .outputs import plan_outputs
    from .pipeline import unmix_file
    from .progress import Monitor

    params = params_for(args.preset, n_endmembers=args.endmembers, device=args.device, seed=args.seed,
                        epochs=args.epochs, lr=args.lr, starts=args.starts, start_epochs=args.start_epochs,
                        patience=args.patience, restarts=args.restarts, w=args.w, kernel=args.kernel,
                        padding=None if args.kernel is None else args.kernel // 2,
                        a=args.a, b=args.b, c=args.c, precision=args.precision, threads=args.threads,
                        method=args.method, exact_limit=args.exact_limit, landmarks=args.landmarks,
                        ffm_tolerance=args.ffm_tolerance, train_windows=args.train_windows, window=args.window,
                        tile=args.tile, abundances=args.abundances)
    source = Path(args.input)
    if not source.exists():
        raise InputError(f"input file not found: {source}")
    _check_band_count(str(source), args.bands, args.endmembers)
    plan = plan_outputs(args.output_dir, args.prefix or source.stem)
    bar = ProgressBar(enabled=not args.quiet)
    cancel = {"asked": False}

    def on_sigint(signum, frame):
        cancel["asked"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        summary = unmix_file(str(source), plan, params, bands=args.bands,
                             monitor=Monitor(bar, lambda: cancel["asked"], bar.info))
    finally:
        signal.signal(signal.SIGINT, previous)
    rec = summary.record
    bar.info(f"done in {rec['timings']['total_s']:.1f} s on {rec['device']}: {summary.result.n_endmembers} "
             f"endmembers, final loss {rec['final_loss']:.5f}")
    print(f"abundances: {summary.paths['stack']}")
    print(f"endmembers: {summary.paths['endmembers_csv']}")
    print(f"report:     {summary.paths['report_html']}")
    return 0


def _check_band_count(path: str, bands, endmembers: int) -> None:
    """Refuse too many endmembers for the bands before the image is read (a cheap look)."""
    if path.lower().endswith(".mat"):
        return                                   # the reader and check_scene see to it
    from .raster_io import open_raster, validate_band_list
    ds = open_raster(path)
    count = ds.RasterCount
    ds = None  # noqa: F841  (closes the file)
    have = f"the image has {count}"
    if bands:
        count = len(validate_band_list(bands, count, path))
        have = f"{count} were chosen"
    if count < endmembers + 1:
        raise InputError(f"{endmembers} endmembers need at least {endmembers + 1} bands; {have}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _run_evaluate(args) -> int:
    from .metrics import evaluate_output_dir, format_report

    scores = evaluate_output_dir(args.output_dir, args.truth, args.truth_endmembers, args.convention)
    print(json.dumps(scores, indent=2) if args.json else format_report(scores))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return _run_unmix(args) if args.command == "unmix" else _run_evaluate(args)
    except InputError as exc:
        print(f"dffn: error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except Cancelled:
        print("\ndffn: cancelled; no outputs were written", file=sys.stderr)
        return EXIT_CANCELLED
    except OSError as exc:                       # full disk, folder gone, ... while writing
        where = "; no output was written to " + str(args.output_dir) if args.command == "unmix" else ""
        print(f"dffn: error: {_one_line(exc)}{where}", file=sys.stderr)
        return EXIT_INPUT
    except FloatingPointError as exc:            # the training loss became NaN or infinite
        print(f"dffn: error: {_one_line(exc)}; try a lower --lr or mask extreme values "
              f"as nodata; no output was written", file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print("dffn: error: not enough memory; choose fewer bands or a smaller image; "
              "no output was written", file=sys.stderr)
        return EXIT_FAULT
    except Exception as exc:                     # a fault of the program, not of the input
        if os.environ.get("DFFN_DEBUG"):
            raise
        print(f"dffn: internal error: {type(exc).__name__}: {_one_line(exc)}; no output was "
              f"written (set DFFN_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_FAULT

"""Command line: ``python -m dffn_qgis unmix|count|apply|batch|evaluate ...``.

Bad input ends with one line on stderr and exit code 2 (argument errors included; a file
system error while writing, such as a full disk, too); Ctrl-C cancels cleanly (exit 130) and
leaves no partial outputs. Any other failure is a fault of the program: one line and exit code 1,
with the traceback only when the environment variable ``DFFN_DEBUG`` is set.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import List, Optional, Sequence

from .core.run.config import DEFAULT_PRESET, PRESETS, params_for
from .core.errors import Cancelled, InputError
from .core.run.parameters import SCHEMA, SOLVERS, Parameter

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
        from .core.run.progress import time_left

        elapsed = time.perf_counter() - self.t0
        left = time_left(elapsed, fraction)
        if self.tty:
            filled = int(30 * fraction)
            self.stream.write(f"\r[{'#' * filled}{'.' * (30 - filled)}] {100 * fraction:5.1f}% "
                              f"{elapsed:6.1f}s {left:>22}  {message[:50]:<50}")
            self.stream.flush()
        elif int(10 * fraction) > self.last_decile:
            self.last_decile = int(10 * fraction)
            self.stream.write(f"{100 * fraction:5.1f}% {elapsed:6.1f}s {message}{' (' + left + ')' if left else ''}\n")

    def info(self, message: str) -> None:
        if self.enabled:
            self.stream.write(("\r\033[K" if self.tty else "") + message + "\n")
            self.stream.flush()


def _endmember_count(text: str) -> int:
    """``auto`` (0: estimated from the image) or a whole number."""
    if text.strip().lower() == "auto":
        return 0
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r} (a number of endmembers, or auto)")


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
    u.add_argument("-o", "--output-dir", required=True, metavar="DIR",
                   help="folder for the outputs (created if missing; existing files are replaced only "
                        "when the run succeeds)")
    u.add_argument("--prefix", default=None, help="file name prefix of the outputs (default: input's name)")
    _add_unmix_options(u, count_required=True)
    u.add_argument("-q", "--quiet", action="store_true", help="no progress bar or log lines")

    c = sub.add_parser("count", help="estimate the number of endmembers of a raster (noise edge, HySime, HFC)",
                       description="Estimate how many endmembers INPUT holds: the noise edge (eigenvalues "
                                   "of the noise-whitened correlation matrix above the largest that noise "
                                   "alone gives), HySime (signal subspace, noise by regression across bands "
                                   "and from neighbouring pixels) and HFC virtual dimensionality; prints them "
                                   "and the recommended count.")
    c.add_argument("input", metavar="INPUT", help="raster file (GeoTIFF, ENVI, VRT, ...) or MATLAB .mat file")
    c.add_argument("--bands", type=_band_list, default=None, metavar="LIST",
                   help="1-based bands to use (default: all except bands flagged bad)")
    c.add_argument("--far", type=float, default=None,
                   help="false-alarm rate of HFC (default 1e-3)")
    c.add_argument("--report", default=None, metavar="HTML",
                   help="also write an HTML report with the curves (a PNG of the same name beside it)")
    c.add_argument("--json", action="store_true", help="print the estimates as JSON")

    a = sub.add_parser("apply", help="unmix a raster with given spectra (a run's endmembers or a library)",
                       description="Unmix INPUT with the spectra of --spectra (a run's _endmembers.csv or .sli, or "
                                   "any CSV with a wavelength or band column, or ENVI library): FCLS, NNLS or "
                                   "least squares, tile by tile; the same outputs as unmix.")
    a.add_argument("input", metavar="INPUT", help="raster file (GeoTIFF, ENVI, VRT, ...)")
    a.add_argument("--spectra", required=True, metavar="FILE", help="CSV or ENVI spectral library (.sli/.hdr)")
    a.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="folder for the outputs")
    a.add_argument("--solver", choices=list(SOLVERS), default=SOLVERS[0],
                   help="fcls: fractions, non-negative and summing to one (default); nnls: non-negative, scaled "
                        "to sum to one; ls: unconstrained least squares")
    a.add_argument("--bands", type=_band_list, default=None, metavar="LIST",
                   help="1-based bands to use (default: all except bands flagged bad)")
    a.add_argument("--prefix", default=None, help="file name prefix of the outputs (default: input's name)")
    a.add_argument("-q", "--quiet", action="store_true", help="no progress bar or log lines")

    b = sub.add_parser("batch", help="unmix many rasters (or apply spectra to them) on a dask cluster",
                       description="Unmix each INPUT (files, globs such as 'tiles/*.tif', or .txt files listing "
                                   "paths) into DIR/<name>/, each scene one task on a dask.distributed cluster: "
                                   "a local one by default, or the one at --scheduler. A scene's outputs appear "
                                   "only when complete; a failing scene is reported and the others go on; a "
                                   "rerun skips the scenes already complete. DIR/batch_summary.csv lists each "
                                   "scene's result.")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="raster files, globs or text files of paths")
    b.add_argument("-o", "--output-dir", required=True, metavar="DIR", help="folder of the scene folders")
    b.add_argument("--spectra", default=None, metavar="FILE",
                   help="apply these spectra (as in 'apply') instead of unmixing with DFFN")
    b.add_argument("--solver", choices=list(SOLVERS), default=SOLVERS[0], help="solver of --spectra (as in 'apply')")
    b.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="an existing dask scheduler (tcp://host:8786 or a scheduler file); default: a local "
                        "cluster on this machine")
    b.add_argument("--workers", type=int, default=0, metavar="N",
                   help="workers of the local cluster (default: as many as scenes, cores and memory allow, "
                        "3 GB each); each runs one scene at a time with the cores shared out")
    _add_unmix_options(b, count_required=False)
    b.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

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


def _add_unmix_options(parser, count_required: bool) -> None:
    """The options of an unmixing: the preset, bands, library and every parameter of the schema."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default=DEFAULT_PRESET,
                        help=f"parameter set the options below start from (default {DEFAULT_PRESET}); "
                             "'paper' is the published setting")
    parser.add_argument("--bands", type=_band_list, default=None, metavar="LIST",
                        help="1-based bands to use, e.g. 1-100,120-150 (default: all except bands flagged bad)")
    parser.add_argument("--keep-bad-bands", action="store_true",
                        help="keep the bands the file flags bad (bbl), those in the atmospheric water-vapour "
                             "windows (about 1340-1460, 1790-1960 nm and beyond 2450 nm) and those whose noise is "
                             "over 4 times their neighbours', left out by default")
    parser.add_argument("--library", default=None, metavar="FILE",
                        help="spectral library that names the endmembers (ENVI .sli or a CSV with a wavelength "
                             "column; default: the bundled one built from earthlib; none: no names)")
    g = parser.add_argument_group("advanced (default: the preset's value)")
    for parameter in SCHEMA:
        _add_option(g if parameter.advanced else parser, parameter, count_required)


def _preset_values(name: str) -> str:
    values = sorted({str(getattr(preset, name)) for preset in PRESETS.values()})
    if len(values) == 1:
        return f"default {values[0]}"
    return "default " + ", ".join(f"{key} {getattr(PRESETS[key], name)}" for key in sorted(PRESETS))


def _add_option(group, parameter: Parameter, count_required: bool = True) -> None:
    """One command-line option of the schema's ``parameter`` (checked by ``DFFNParams.validate``)."""
    kwargs = dict(dest=parameter.name, default=None)
    if parameter.name == "n_endmembers":
        kwargs.update(required=count_required, metavar="P", type=_endmember_count)
        group.add_argument(*parameter.cli_flags, help=f"{parameter.help}; 2 to {parameter.high:g}", **kwargs)
        return
    else:
        text = f"{parameter.help} ({_preset_values(parameter.name)})"
    if parameter.kind is str:
        if parameter.check is None:
            kwargs["choices"] = list(parameter.choices)
        else:
            kwargs["metavar"] = parameter.name.upper()
    else:
        kwargs["type"] = parameter.kind
        text += f"; {parameter.range_text}" if parameter.name != "n_endmembers" else ""
    group.add_argument(*parameter.cli_flags, help=text.replace("%", "%%"), **kwargs)


def _run_unmix(args) -> int:
    from .core.run import service
    from .core.io.outputs import plan_outputs
    from .core.run.progress import Monitor

    params = params_for(args.preset, **{p.name: getattr(args, p.name) for p in SCHEMA})
    request = service.RunRequest.make(args.input, params, plan_outputs(args.output_dir, args.prefix or
                                                                       Path(args.input).stem), args.bands,
                                       args.library, args.keep_bad_bands)
    bar = ProgressBar(enabled=not args.quiet)
    cancel = {"asked": False}

    def on_sigint(signum, frame):
        cancel["asked"] = True

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        summary = service.run(request, Monitor(bar, lambda: cancel["asked"], bar.info))
    finally:
        signal.signal(signal.SIGINT, previous)
    rec = summary.record
    bar.info(f"done in {rec['timings']['total_s']:.1f} s on {rec['device']}: {summary.result.n_endmembers} "
             f"endmembers, final loss {rec['final_loss']:.5f}")
    written = summary.outputs
    print(f"abundances: {written.stack}")
    print(f"endmembers: {written.endmembers_csv}")
    print(f"report:     {written.report_html}")
    return 0


def _run_count(args) -> int:
    from .core.method.endmember_count import DEFAULT_FAR
    from .core.run import service
    from .core.run.progress import Monitor

    bar = ProgressBar(enabled=not args.json)
    estimate = service.count(args.input, args.bands, DEFAULT_FAR if args.far is None else args.far,
                             args.report, Monitor(bar, None, bar.info))
    if args.json:
        print(json.dumps(estimate.to_dict(), indent=2))
    else:
        print(estimate.describe())
        if args.report:
            print(f"report: {args.report}")
    return 0


def _run_apply(args) -> int:
    from .core.io.outputs import plan_outputs
    from .core.run import service
    from .core.run.progress import Monitor

    bar = ProgressBar(enabled=not args.quiet)
    plan = plan_outputs(args.output_dir, args.prefix or Path(args.input).stem)
    summary = service.apply(args.input, args.spectra, plan, args.solver, args.bands, Monitor(bar, None, bar.info))
    print(f"abundances: {summary.outputs.stack}")
    print(f"report:     {summary.outputs.report_html}")
    return 0


def _run_batch(args) -> int:
    from .core.run import batch

    if args.spectra is None and args.n_endmembers is None:
        raise InputError("the number of endmembers is required (-p P, or -p auto), unless --spectra is given")
    params = None
    if args.spectra is None:
        params = params_for(args.preset, **{p.name: getattr(args, p.name) for p in SCHEMA})
    jobs = batch.plan_jobs(args.inputs, args.output_dir, params, args.spectra, args.solver, args.bands,
                           args.library, args.keep_bad_bands)
    bar = ProgressBar(enabled=not args.quiet)

    def on_scene(finished: int, total: int, result) -> None:
        bar.info(f"{result.scene}: {result.status}" + (f" ({result.reason})" if result.reason else "")
                 + (f" in {result.seconds:.0f} s" if result.status == "done" else ""))
        bar(finished / total, f"{finished} of {total} scenes")

    with contextlib.ExitStack() as stack:
        threads = args.threads or 0
        if args.scheduler:
            client = stack.enter_context(batch.connect(args.scheduler))
            where = f"the cluster at {args.scheduler}"
        else:
            workers, auto_threads = batch.plan_workers(len(jobs), args.workers)
            threads = threads or auto_threads
            bar.info(f"starting a local dask cluster: {workers} worker(s), {threads} thread(s) each")
            client = stack.enter_context(batch.local_cluster(workers, threads))
            where = f"{workers} local worker(s)"
        bar.info(f"{len(jobs)} scene(s) on {where}; outputs in {args.output_dir}")
        outcome = batch.run_batch(jobs, client, args.output_dir, on_scene, threads=threads)
    print(_batch_table(outcome.results))
    print(f"summary: {outcome.summary_csv}")
    failed = outcome.count("failed")
    if failed:
        print(f"dffn: {failed} of {len(jobs)} scene(s) failed (see the table)", file=sys.stderr)
        return EXIT_INPUT
    return 0


def _batch_table(results) -> str:
    rows = [("scene", "status", "seconds", "endmembers", "reason")]
    rows += [(r.scene, r.status, f"{r.seconds:.0f}", "" if r.endmembers is None else str(r.endmembers), r.reason)
             for r in results]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row[:4], widths)) + "  " + row[4]
                     for row in rows).rstrip()


def _run_evaluate(args) -> int:
    from .core.eval.metrics import evaluate_output_dir, format_report

    scores = evaluate_output_dir(args.output_dir, args.truth, args.truth_endmembers, args.convention)
    print(json.dumps(scores, indent=2) if args.json else format_report(scores))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    try:
        return {"unmix": _run_unmix, "count": _run_count, "apply": _run_apply, "batch": _run_batch,
                "evaluate": _run_evaluate}[args.command](args)
    except Exception as exc:
        from .core.run.service import describe_failure
        if isinstance(exc, Cancelled):
            print("\ndffn: cancelled; no outputs were written", file=sys.stderr)
            return EXIT_CANCELLED
        failure = describe_failure(exc)
        if failure.kind == "fault" and not isinstance(exc, MemoryError):
            if os.environ.get("DFFN_DEBUG"):
                raise
            print(f"dffn: internal error: {failure.message} (set DFFN_DEBUG=1 for the traceback)",
                  file=sys.stderr)
            return EXIT_FAULT
        print(f"dffn: error: {failure.message}", file=sys.stderr)
        return EXIT_INPUT if failure.kind == "input" else EXIT_FAULT

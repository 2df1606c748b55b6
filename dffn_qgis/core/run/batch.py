"""Many scenes at once: each scene one task on a ``dask.distributed`` cluster.

``python -m dffn_qgis batch`` (:mod:`dffn_qgis.cli`) is the front end. A batch is a list of
:class:`SceneJob` (one raster each, unmixed by DFFN or with given spectra) run by
:func:`run_batch` on a ``distributed.Client``: a ``LocalCluster`` on this machine
(:func:`local_cluster`) or any cluster a scheduler address reaches.

What a scene's outputs promise:

* **Atomic.** A scene is written into ``DIR/.partial/<name>-<token>/`` and renamed to
  ``DIR/<name>/`` only once every file is there, ``batch_record.json`` last. A worker killed in
  the middle leaves nothing under ``DIR/<name>``; the scheduler hands the scene to another worker
  and the abandoned folder is removed when the batch ends.
* **Resumable.** ``batch_record.json`` holds the scene's fingerprint (the input's size and time,
  the parameters, the spectra); a rerun skips a scene whose record matches and redoes the rest.
* **Isolated.** A scene that fails is reported with its name and one line; the others go on.

dask is imported only here, inside the functions that need it: the rest of the plugin (and QGIS)
never needs it.
"""
from __future__ import annotations

import contextlib
import csv
import glob
import io
import json
import logging
import os
import secrets
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Optional, Sequence

from ..errors import Cancelled, InputError
from .config import DFFNParams

RECORD = "batch_record.json"       # written last into a scene's folder: the scene is complete
SUMMARY = "batch_summary.csv"      # one row per scene, written when the batch ends
PARTIAL = ".partial"               # scenes being written (removed when the batch ends)
LIST_SUFFIXES = (".txt", ".lst")   # a text file of paths, one a line
# files a glob may match that are not rasters of their own (ENVI headers, GDAL's side files)
SIDECARS = (".hdr", ".aux.xml", ".ovr", ".msk", ".tfw", ".prj", ".json", ".csv", ".sli", ".html", ".png")
SCENE_BYTES = 3 * 1024 ** 3        # memory a worker is given per scene (the scalable path's bound)
FIELDS = ("scene", "input", "status", "reason", "seconds", "endmembers", "final_loss", "outputs", "worker")


@dataclass(frozen=True)
class SceneJob:
    """One raster of a batch, and where its outputs go (``DIR/<name>/<name>_...``)."""

    name: str
    input_path: str
    out_root: str
    params: Optional[DFFNParams] = None     # unmix with DFFN; or
    spectra: Optional[str] = None           # apply these spectra
    solver: str = "fcls"
    bands: Optional[tuple] = None
    library: Optional[str] = None
    keep_bad_bands: bool = False

    @property
    def mode(self) -> str:
        return "apply" if self.spectra else "unmix"

    @property
    def folder(self) -> Path:
        return Path(self.out_root) / self.name

    def fingerprint(self) -> dict:
        """What decides a scene's outputs; a rerun redoes a scene whose fingerprint changed.

        The thread count is left out: it changes how fast, not what.
        """
        what = {"mode": self.mode, "input": _file_stamp(self.input_path), "bands": list(self.bands or ()),
                "keep_bad_bands": self.keep_bad_bands}
        if self.mode == "apply":
            what.update(spectra=_file_stamp(self.spectra), solver=self.solver)
        else:
            params = asdict(self.params)
            params.pop("threads", None)
            what.update(params=params, library=_file_stamp(self.library) if self.library not in (None, "none")
                        else self.library)
        return what


@dataclass
class SceneResult:
    """How one scene of a batch ended; ``status``: ``done``, ``skipped`` (complete already) or ``failed``."""

    scene: str
    input: str
    status: str
    reason: str = ""
    seconds: float = 0.0
    endmembers: Optional[int] = None
    final_loss: Optional[float] = None
    outputs: str = ""
    worker: str = ""

    def row(self) -> Dict[str, str]:
        values = asdict(self)
        values["seconds"] = f"{self.seconds:.1f}"
        values["final_loss"] = "" if self.final_loss is None else f"{self.final_loss:.6f}"
        values["endmembers"] = "" if self.endmembers is None else str(self.endmembers)
        return {key: str(values[key]) for key in FIELDS}


@dataclass
class BatchOutcome:
    results: List[SceneResult] = field(default_factory=list)
    summary_csv: str = ""

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)


def _file_stamp(path: Optional[str]) -> Optional[dict]:
    if path is None:
        return None
    try:
        st = os.stat(path)
    except OSError:
        return {"path": str(Path(path).absolute()), "missing": True}
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


# ---------------------------------------------------------------------------------------------
# the list of scenes

def expand_inputs(items: Iterable[str]) -> List[str]:
    """Files, globs (``tiles/*.tif``) and text files of paths (``.txt``/``.lst``, one a line,
    ``#`` comments, relative to the list's folder) to a list of paths, in the order given.

    A glob that matches nothing is an :class:`InputError`; a path that is not there is kept (its
    scene fails with a clear line while the others run). Side files a glob matches (ENVI headers,
    ``.aux.xml``, ...) are left out, and a path given twice is run once.
    """
    paths: List[str] = []
    for item in items:
        item = str(item)
        if any(ch in item for ch in "*?["):
            matches = sorted(m for m in glob.glob(item) if os.path.isfile(m) and not m.lower().endswith(SIDECARS))
            if not matches:
                raise InputError(f"no raster matches {item!r}")
            paths.extend(matches)
        elif item.lower().endswith(LIST_SUFFIXES) and os.path.isfile(item):
            base = Path(item).parent
            with open(item, encoding="utf-8") as handle:
                for line in handle:
                    line = line.split("#", 1)[0].strip()
                    if line:
                        paths.append(str(base / line) if not os.path.isabs(line) else line)
        else:
            paths.append(item)
    seen, unique = set(), []
    for path in paths:
        key = os.path.abspath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    if not unique:
        raise InputError("no input rasters given")
    return unique


def scene_names(paths: Sequence[str]) -> List[str]:
    """A folder name per input: its file name without the suffix; where two inputs share it, the
    parent folder's name goes in front, then a number."""
    stems = [Path(p).stem for p in paths]
    names = []
    for path, stem in zip(paths, stems):
        names.append(stem if stems.count(stem) == 1 else f"{Path(path).absolute().parent.name}_{stem}")
    taken: Dict[str, int] = {}
    unique = []
    for name in names:
        taken[name] = taken.get(name, 0) + 1
        unique.append(name if names.count(name) == 1 else f"{name}_{taken[name]}")
    return unique


def plan_jobs(inputs: Iterable[str], out_root, params: Optional[DFFNParams] = None, spectra: Optional[str] = None,
              solver: str = "fcls", bands: Optional[Sequence[int]] = None, library: Optional[str] = None,
              keep_bad_bands: bool = False) -> List[SceneJob]:
    """One :class:`SceneJob` per input raster: DFFN with ``params``, or ``spectra`` applied."""
    if (params is None) == (spectra is None):
        raise InputError("a batch either unmixes (parameters) or applies spectra, one of the two")
    if spectra is not None and not os.path.isfile(spectra):
        raise InputError(f"spectra file not found: {spectra}")
    if library not in (None, "none") and not os.path.isfile(library):
        raise InputError(f"spectral library not found: {library}")
    paths = expand_inputs(inputs)
    root = str(Path(out_root).absolute())
    return [SceneJob(name, str(Path(path).absolute()) if "://" not in path and not path.startswith("/vsi") else path,
                     root, params, None if spectra is None else str(Path(spectra).absolute()), solver,
                     tuple(bands) if bands else None, library, keep_bad_bands)
            for name, path in zip(scene_names(paths), paths)]


def is_complete(job: SceneJob) -> bool:
    """The scene's folder holds a complete result made from the same input and parameters."""
    try:
        record = json.loads((job.folder / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return record.get("status") == "complete" and record.get("fingerprint") == _jsonable(job.fingerprint())


def _jsonable(value):
    return json.loads(json.dumps(value))


# ---------------------------------------------------------------------------------------------
# one scene (runs on a worker)

def run_scene(job: SceneJob) -> SceneResult:
    """Unmix (or apply spectra to) one scene into its folder, atomically; never raises for a
    scene that fails, it returns a ``failed`` result with the reason in one line."""
    from .progress import Monitor
    from .service import apply, describe_failure, run, RunRequest
    from ..io.outputs import plan_outputs

    t0 = time.perf_counter()
    worker = _worker_name()
    staging = Path(job.out_root) / PARTIAL / f"{job.name}-{secrets.token_hex(4)}"
    result = SceneResult(job.name, job.input_path, "failed", worker=worker)
    try:
        if job.folder.exists() and not (job.folder / RECORD).exists():
            raise InputError(f"{job.folder} exists and was not written by a batch run; move it or choose "
                             f"another output folder")
        staging.mkdir(parents=True)
        plan = plan_outputs(staging, job.name)
        quiet = Monitor()
        if job.mode == "apply":
            summary = apply(job.input_path, job.spectra, plan, job.solver, job.bands, quiet)
        else:
            request = RunRequest.make(job.input_path, job.params, plan, job.bands, job.library, job.keep_bad_bands)
            summary = run(request, quiet)
        record = summary.record
        result.endmembers = int(summary.result.n_endmembers)
        loss = record.get("final_loss")
        result.final_loss = None if loss is None else float(loss)
        result.seconds = time.perf_counter() - t0
        (staging / RECORD).write_text(json.dumps({
            "status": "complete", "scene": job.name, "fingerprint": job.fingerprint(),
            "seconds": round(result.seconds, 3), "worker": worker, "endmembers": result.endmembers,
            "final_loss": result.final_loss, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=2),
            encoding="utf-8")
        _replace_folder(staging, job.folder)
        result.status, result.outputs = "done", str(job.folder)
    except Exception as exc:  # a scene's failure is its own: reported, the batch goes on
        result.reason = describe_failure(exc).message
        result.seconds = time.perf_counter() - t0
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return result


def _replace_folder(staging: Path, final: Path) -> None:
    """Put the finished ``staging`` folder at ``final``; an earlier batch result there is replaced
    (moved aside first, removed once the new one is in place)."""
    old = None
    if final.exists():
        old = staging.parent / f"{final.name}-replaced-{secrets.token_hex(4)}"
        os.rename(final, old)
    try:
        os.rename(staging, final)
    except OSError:
        if old is not None:
            os.rename(old, final)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _worker_name() -> str:
    try:
        from distributed import get_worker
        return get_worker().name if isinstance(get_worker().name, str) else str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


# ---------------------------------------------------------------------------------------------
# the cluster

def _distributed():
    try:
        import distributed
    except ImportError:
        raise InputError("batch runs need dask.distributed: pip install 'distributed' (scripts/setup.sh "
                         "installs it)")
    return distributed


def plan_workers(n_scenes: int, workers: int = 0, cores: Optional[int] = None,
                 memory_bytes: Optional[int] = None) -> tuple:
    """``(workers, torch threads per worker)`` for a local cluster: one scene a worker at a time,
    as many workers as scenes, cores and memory (:data:`SCENE_BYTES` each) allow, unless given;
    the cores shared out among them."""
    cores = cores or os.cpu_count() or 1
    if workers <= 0:
        by_memory = max(1, (memory_bytes or _total_memory()) // SCENE_BYTES)
        workers = max(1, min(n_scenes, cores, by_memory))
    return workers, max(1, cores // workers)


def _total_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024 ** 3


@contextlib.contextmanager
def local_cluster(workers: int, threads: int = 1):
    """A ``LocalCluster`` of ``workers`` processes, each running one scene at a time (a scene's
    torch uses ``threads`` threads), and a client on it."""
    distributed = _distributed()
    logging.getLogger("distributed").setLevel(logging.WARNING)      # its start-up chatter
    with contextlib.redirect_stdout(io.StringIO()):
        cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                           scheduler_kwargs={"dashboard": False}, memory_limit="auto",
                                           silence_logs=logging.WARNING,
                                           env={"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def connect(address: str, timeout: float = 30.0):
    """A client on an existing cluster (``tcp://host:8786``, or a scheduler file)."""
    distributed = _distributed()
    try:
        if os.path.isfile(address):
            return distributed.Client(scheduler_file=address, timeout=timeout)
        return distributed.Client(address, timeout=timeout)
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the dask scheduler at {address}: {' '.join(str(exc).split())}")


def run_batch(jobs: Sequence[SceneJob], client, out_root, progress: Optional[Callable[[int, int, SceneResult], None]] = None,
              is_cancelled: Optional[Callable[[], bool]] = None, threads: int = 0) -> BatchOutcome:
    """Run ``jobs`` on ``client``'s cluster: complete scenes are skipped, the others are one task
    each; ``progress(finished, total, result)`` after each scene; the summary CSV is written in
    ``out_root`` at the end (also after a cancel, with the scenes not run marked so)."""
    distributed = _distributed()
    out_root = Path(out_root)
    out_root.mkdir(parents=True, exist_ok=True)
    results: Dict[str, SceneResult] = {}
    todo = []
    for job in jobs:
        if is_complete(job):
            results[job.name] = SceneResult(job.name, job.input_path, "skipped", "complete already",
                                            outputs=str(job.folder), **_recorded(job))
        else:
            if threads > 0 and job.params is not None:
                from dataclasses import replace
                job = replace(job, params=replace(job.params, threads=threads))
            todo.append(job)
    finished = 0
    for result in list(results.values()):
        finished += 1
        if progress:
            progress(finished, len(jobs), result)
    futures = {client.submit(run_scene, job, key=f"dffn-scene-{job.name}-{secrets.token_hex(4)}", pure=False): job
               for job in todo}
    try:
        pending = distributed.as_completed(list(futures))
        for future in pending:
            job = futures[future]
            try:
                result = future.result()
            except Exception as exc:  # the task never returned: its workers died (KilledWorker)
                from .service import one_line
                result = SceneResult(job.name, job.input_path, "failed",
                                     f"the worker running it stopped ({type(exc).__name__}: {one_line(exc)}); "
                                     f"out of memory?")
            results[job.name] = result
            finished += 1
            if progress:
                progress(finished, len(jobs), result)
            if is_cancelled is not None and is_cancelled():
                raise Cancelled()
    except (Cancelled, KeyboardInterrupt):
        client.cancel(list(futures))
        for job in jobs:
            results.setdefault(job.name, SceneResult(job.name, job.input_path, "cancelled", "not run: cancelled"))
        raise
    finally:
        ordered = [results.get(job.name) or SceneResult(job.name, job.input_path, "cancelled", "not run")
                   for job in jobs]
        summary = write_summary(out_root / SUMMARY, ordered)
        _remove_partial(out_root)
    return BatchOutcome(ordered, summary)


def _recorded(job: SceneJob) -> dict:
    record = json.loads((job.folder / RECORD).read_text(encoding="utf-8"))
    return {"endmembers": record.get("endmembers"), "final_loss": record.get("final_loss")}


def _remove_partial(out_root: Path) -> None:
    """Remove what killed or cancelled tasks left in ``.partial`` (a live task removes its own)."""
    partial = out_root / PARTIAL
    if partial.exists():
        shutil.rmtree(partial, ignore_errors=True)


def write_summary(path, results: Sequence[SceneResult]) -> str:
    """The batch's table, one row per scene (written whole, then renamed into place)."""
    from ..io.outputs import write_files_atomically

    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=FIELDS)
    writer.writeheader()
    for result in results:
        writer.writerow(result.row())
    write_files_atomically({str(path): table.getvalue().encode("utf-8")})
    return str(path)

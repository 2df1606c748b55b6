"""Scoring an unmixing against a ground truth, as the DFFN paper scores it.

Protocol (docs/DFFN_METHOD.md, "Evaluation"): abundances are normalised to sum to one per pixel,
every endmember (estimated and true) is divided by its maximum, endmember error is the spectral
angle (SAD) and abundance error the per-map RMSE. Estimates are matched to truths two ways:

* ``one_to_one``: the Hungarian assignment on the SAD matrix (the main figures);
* ``reference``: what the published reference code does, each estimate independently taking
  the truth with the smallest error, separately for SAD and RMSE (two estimates may share a truth).

Everything :func:`evaluate` returns is plain JSON (floats, ints, lists, ``None``).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import InputError

TRUTH_ABUNDANCES_SUFFIX = "_truth_abundances.tif"
TRUTH_ENDMEMBERS_SUFFIX = "_truth_endmembers.csv"
ABUNDANCES_SUFFIX = "_abundances.tif"
ENDMEMBERS_SUFFIX = "_endmembers.csv"


# ---------------------------------------------------------------------------------------------
# matrices and matchings

def sad_matrix(E_est: np.ndarray, E_true: np.ndarray) -> np.ndarray:
    """Spectral angles (radians) between every estimated (L, P) and true (L, Q) endmember: (P, Q)."""
    E_est = np.asarray(E_est, dtype=np.float64)
    E_true = np.asarray(E_true, dtype=np.float64)
    if E_est.ndim != 2 or E_true.ndim != 2 or E_est.shape[0] != E_true.shape[0]:
        raise InputError(f"endmember matrices must be (bands, count) with the same band count; "
                         f"got {E_est.shape} and {E_true.shape}")
    norms = np.outer(np.linalg.norm(E_est, axis=0), np.linalg.norm(E_true, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (E_est.T @ E_true) / norms
    cos = np.where(norms > 0, cos, 0.0)   # a zero spectrum is at right angles to everything
    return np.arccos(np.clip(cos, -1.0, 1.0))


def rmse_matrix(A_est: np.ndarray, A_true: np.ndarray) -> np.ndarray:
    """RMSE between every estimated (P, N) and true (Q, N) abundance map: (P, Q).

    A pixel that is NaN in any map of either set takes no part; maps of shape (P, H, W) are
    flattened first.
    """
    A_est, A_true = _as_maps(A_est), _as_maps(A_true)
    if A_est.shape[1] != A_true.shape[1]:
        raise InputError(f"abundance maps differ in pixel count: {A_est.shape[1]} and {A_true.shape[1]}")
    keep = np.isfinite(A_est).all(axis=0) & np.isfinite(A_true).all(axis=0)
    if not keep.any():
        raise InputError("no pixel is valid in both the estimated and the true abundances")
    est, true = A_est[:, keep], A_true[:, keep]
    diff = est[:, None, :] - true[None, :, :]
    return np.sqrt(np.mean(diff * diff, axis=2))


def match_hungarian(cost: np.ndarray) -> np.ndarray:
    """One-to-one matching of rows (estimates) to columns (truths) with the lowest total cost.

    Returns ``perm`` of length P: ``perm[i]`` is the column matched to row ``i``, or -1 when
    there are more rows than columns and row ``i`` is left over.
    """
    cost = np.asarray(cost, dtype=np.float64)
    rows, cols = linear_sum_assignment(cost)
    perm = np.full(cost.shape[0], -1, dtype=int)
    perm[rows] = cols
    return perm


def matched_sad(E_est: np.ndarray, E_true: np.ndarray) -> np.ndarray:
    """Angles (rad) between each true endmember (column of ``E_true``, in its order) and the estimate
    matched to it one to one (the Hungarian matching of :func:`evaluate`); NaN for a truth left unmatched."""
    angles = sad_matrix(E_est, E_true).T                   # truths x estimates
    matched = match_hungarian(angles)
    return np.array([angles[j, i] if i >= 0 else np.nan for j, i in enumerate(matched)])


def match_reference(cost: np.ndarray) -> np.ndarray:
    """The reference code's matching: each row takes its cheapest column, independently."""
    return np.argmin(np.asarray(cost, dtype=np.float64), axis=1)


# ---------------------------------------------------------------------------------------------
# the protocol

def normalise_abundances(A: np.ndarray) -> np.ndarray:
    """Maps (P, N) divided by their per-pixel sum; pixels summing to zero are left as they are."""
    A = _as_maps(A)
    total = A.sum(axis=0, keepdims=True)
    safe = np.where(np.abs(total) > 1e-12, total, 1.0)
    return A / safe


def normalise_endmembers(E: np.ndarray) -> np.ndarray:
    """Spectra (L, P) each divided by its maximum; a spectrum with no positive value is left as is."""
    E = np.asarray(E, dtype=np.float64)
    peak = E.max(axis=0, keepdims=True)
    return E / np.where(peak > 0, peak, 1.0)


def evaluate(E_est, A_est, E_true, A_true, true_names: Optional[Sequence[str]] = None,
             est_names: Optional[Sequence[str]] = None) -> dict:
    """Score estimated endmembers (L, P) and abundances (P, N) against the truth (L, Q), (Q, N).

    Abundances may also be given as (P, H, W). The counts P and Q may differ: the one-to-one
    matching then leaves estimates (or truths) unmatched, reported as ``None``. Means are taken
    over the matched pairs. SAD is given in radians and degrees; RMSE in abundance units.
    """
    E_est, E_true = normalise_endmembers(E_est), normalise_endmembers(E_true)
    A_est, A_true = normalise_abundances(A_est), normalise_abundances(A_true)
    if E_est.shape[1] != A_est.shape[0] or E_true.shape[1] != A_true.shape[0]:
        raise InputError("the endmember and abundance counts do not agree")
    sad = sad_matrix(E_est, E_true)
    rmse = rmse_matrix(A_est, A_true)
    P, Q = sad.shape
    true_names = list(true_names) if true_names is not None else [f"truth {j + 1}" for j in range(Q)]
    est_names = list(est_names) if est_names is not None else [f"endmember {i + 1}" for i in range(P)]
    valid = np.isfinite(A_est).all(axis=0) & np.isfinite(A_true).all(axis=0)

    hung = match_hungarian(sad)
    one_to_one = _scores(hung, hung, sad, rmse, true_names)
    reference = _scores(match_reference(sad), match_reference(rmse), sad, rmse, true_names)
    return {
        "n_estimated": int(P),
        "n_true": int(Q),
        "n_pixels": int(np.count_nonzero(valid)),
        "estimated_names": est_names,
        "true_names": true_names,
        "mean_sad_rad": one_to_one["mean_sad_rad"],
        "mean_sad_deg": one_to_one["mean_sad_deg"],
        "mean_rmse": one_to_one["mean_rmse"],
        "one_to_one": one_to_one,
        "reference": reference,
        "sad_matrix_rad": sad.tolist(),
        "rmse_matrix": rmse.tolist(),
        "convention": ("abundances normalised to sum to one per pixel, endmembers divided by their "
                       "maximum; SAD in radians (and degrees); RMSE per abundance map; one_to_one: "
                       "Hungarian matching on the SAD matrix; reference: per-estimate argmin, "
                       "independently for SAD and RMSE"),
    }


def _scores(sad_match: np.ndarray, rmse_match: np.ndarray, sad: np.ndarray, rmse: np.ndarray,
            true_names: List[str]) -> dict:
    """Per-estimate figures for the given matchings (-1 = unmatched) and their means."""
    def pick(matrix, match):
        return [float(matrix[i, j]) if j >= 0 else None for i, j in enumerate(match)]

    sad_rad = pick(sad, sad_match)
    rmse_v = pick(rmse, rmse_match)
    mean_sad = _mean(sad_rad)
    return {
        "sad_match": [int(j) if j >= 0 else None for j in sad_match],
        "rmse_match": [int(j) if j >= 0 else None for j in rmse_match],
        "sad_match_names": [true_names[j] if j >= 0 else None for j in sad_match],
        "sad_rad": sad_rad,
        "sad_deg": [math.degrees(v) if v is not None else None for v in sad_rad],
        "rmse": rmse_v,
        "mean_sad_rad": mean_sad,
        "mean_sad_deg": math.degrees(mean_sad) if mean_sad is not None else None,
        "mean_rmse": _mean(rmse_v),
    }


def _mean(values) -> Optional[float]:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _as_maps(A) -> np.ndarray:
    A = np.asarray(A, dtype=np.float64)
    if A.ndim == 3:
        return A.reshape(A.shape[0], -1)
    if A.ndim != 2:
        raise InputError(f"abundances must be (count, pixels) or (count, rows, cols); got {A.shape}")
    return A


# ---------------------------------------------------------------------------------------------
# text

def format_report(d: dict) -> str:
    """Readable lines for an :func:`evaluate` result."""
    lines = [f"pixels scored: {d['n_pixels']}; endmembers: {d['n_estimated']} estimated, "
             f"{d['n_true']} true"]
    if d.get("abundance_convention") == "max-normalised-nnls":
        lines.append("abundances re-derived from the endmembers in the truth's convention (max-normalised NNLS)")
    for label, key in (("one-to-one (Hungarian on SAD)", "one_to_one"),
                       ("reference (per-estimate argmin)", "reference")):
        s = d[key]
        lines.append(f"{label}:")
        lines.append(f"  mean SAD {_num(s['mean_sad_rad'])} rad ({_num(s['mean_sad_deg'], 2)} deg)")
        lines.append(f"  mean RMSE {_num(s['mean_rmse'])}")
        for i, name in enumerate(d["estimated_names"]):
            j_sad, j_rmse = s["sad_match"][i], s["rmse_match"][i]
            sad_to = d["true_names"][j_sad] if j_sad is not None else "unmatched"
            rmse_to = d["true_names"][j_rmse] if j_rmse is not None else "unmatched"
            line = (f"  {name} -> {sad_to}: SAD {_num(s['sad_rad'][i])} rad "
                    f"({_num(s['sad_deg'][i], 2)} deg)")
            line += f", RMSE {_num(s['rmse'][i])}" + ("" if rmse_to == sad_to else f" (vs {rmse_to})")
            lines.append(line)
    return "\n".join(lines)


def _num(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------------------------------------
# scoring a run's output folder

# How the estimated abundances are compared with the truth's: "fractions" scores the run's own
# abundances; "max-normalised-nnls" re-derives them from the run's endmembers the way Samson's
# shipped truth was made (NNLS on the endmembers divided by their maxima, scaled to sum to one).
CONVENTIONS = ("fractions", "max-normalised-nnls")


def max_normalised_nnls(Y: np.ndarray, E: np.ndarray) -> np.ndarray:
    """Abundances (P, N) of pixels ``Y`` (L, N) in Samson's truth convention, from endmembers ``E``."""
    from ..method.abundance_lsq import nnls
    from ..run.result import sum_to_one
    return sum_to_one(nnls(Y, normalise_endmembers(E)))[0]


def evaluate_output_dir(output_dir, truth, truth_endmembers=None, convention: str = "fractions") -> dict:
    """Score the abundances and endmembers a run wrote to ``output_dir`` against a ground truth.

    ``truth`` is either a MATLAB file with ``A`` (Q x pixels, column-major pixel order, as
    Samson.mat) and ``M`` (bands x Q), or a truth abundance raster ``<stem>_truth_abundances.tif``
    (Q bands) whose endmembers are read from ``truth_endmembers`` or, when that is None, from
    ``<stem>_truth_endmembers.csv`` beside it; or a folder holding one such raster/CSV pair.
    """
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise InputError(f"output folder not found: {output_dir}")
    stack = _find_one(output_dir, ABUNDANCES_SUFFIX, TRUTH_ABUNDANCES_SUFFIX, "abundance raster")
    em_csv = _find_one(output_dir, ENDMEMBERS_SUFFIX, TRUTH_ENDMEMBERS_SUFFIX, "endmember CSV")
    A_est = read_abundance_raster(stack)
    key_est, E_est, est_names = read_endmember_csv(em_csv)
    A_true, (key_true, E_true, true_names) = _read_truth(Path(truth), truth_endmembers, A_est.shape[1:])
    E_true = _align_bands(key_est, key_true, E_true)
    if convention not in CONVENTIONS:
        raise InputError(f"convention must be one of {', '.join(CONVENTIONS)} (got {convention!r})")
    if convention == "max-normalised-nnls":
        A_est = _rederived(Path(truth), E_est, A_est)
    result = evaluate(E_est, A_est, E_true, A_true, true_names=true_names, est_names=est_names)
    result.update(abundances_path=str(stack), endmembers_path=str(em_csv), truth_path=str(truth),
                  abundance_convention=convention)
    return result


def _rederived(truth: Path, E_est: np.ndarray, A_est: np.ndarray) -> np.ndarray:
    """The run's abundances re-derived from its endmembers and the image in the truth's .mat."""
    from ..io.mat_io import read_mat_scene
    if truth.suffix.lower() != ".mat":
        raise InputError("the max-normalised-nnls convention needs the image: give the truth as a .mat with Y")
    scene = read_mat_scene(str(truth))
    if scene.n_bands != E_est.shape[0] or scene.valid.size != A_est[0].size:
        raise InputError(f"the image in {truth.name} ({scene.n_bands} bands, {scene.valid.size} pixels) does not "
                         f"match the run ({E_est.shape[0]} bands, {A_est[0].size} pixels)")
    Y = scene.data.reshape(scene.n_bands, -1).astype(np.float64)
    A = max_normalised_nnls(Y, E_est).reshape(A_est.shape)
    return np.where(np.isfinite(A_est), A, np.nan)


def read_abundance_raster(path) -> np.ndarray:
    """A multi-band raster as float64 (bands, rows, cols) with nodata turned into NaN."""
    from osgeo import gdal

    ds = gdal.Open(str(path))
    if ds is None:
        raise InputError(f"cannot open raster {path}")
    maps = []
    for b in range(1, ds.RasterCount + 1):
        band = ds.GetRasterBand(b)
        data = band.ReadAsArray().astype(np.float64)
        nodata = band.GetNoDataValue()
        if nodata is not None:
            data[data == nodata] = np.nan
        maps.append(data)
    return np.stack(maps)


def read_endmember_csv(path):
    """``(key, E, names)`` from an endmember CSV: first column ``wavelength`` or ``band``.

    ``key`` is ``(column name, values)`` of the first column; ``E`` is (bands, P).
    """
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r]
    if len(rows) < 2 or len(rows[0]) < 2:
        raise InputError(f"{path}: expected a header and one column per endmember")
    header, body = rows[0], rows[1:]
    if header[0].strip().lower() not in ("wavelength", "band"):
        raise InputError(f"{path}: the first column must be 'wavelength' or 'band' (got {header[0]!r})")
    try:
        values = np.array([[float(v) for v in r] for r in body], dtype=np.float64)
    except ValueError as exc:
        raise InputError(f"{path}: non-numeric value ({exc})") from None
    if values.shape[1] != len(header):
        raise InputError(f"{path}: rows and header differ in column count")
    return (header[0].strip().lower(), values[:, 0]), values[:, 1:], [h.strip() for h in header[1:]]


def _find_one(folder: Path, suffix: str, exclude_suffix: Optional[str], what: str) -> Path:
    """The one file named ``*<suffix>`` (hidden files and ``*<exclude_suffix>`` aside)."""
    found = sorted(p for p in folder.glob("*" + suffix)
                   if not p.name.startswith(".")
                   and not (exclude_suffix and p.name.endswith(exclude_suffix)))
    if not found:
        raise InputError(f"no {what} (*{suffix}) in {folder}")
    if len(found) > 1:
        raise InputError(f"more than one {what} in {folder}: " + ", ".join(p.name for p in found))
    return found[0]


def _read_truth(truth: Path, truth_endmembers, shape):
    """Truth abundances (Q, H, W) and the ``read_endmember_csv``-style triple of its endmembers."""
    if truth.suffix.lower() == ".mat":
        return _read_truth_mat(truth, shape)
    if truth.is_dir():
        raster = _find_one(truth, TRUTH_ABUNDANCES_SUFFIX, None, "truth abundance raster")
    elif truth.is_file():
        raster = truth
    else:
        raise InputError(f"ground truth not found: {truth}")
    if truth_endmembers is None:
        stem = raster.name[:-len(TRUTH_ABUNDANCES_SUFFIX)] if raster.name.endswith(TRUTH_ABUNDANCES_SUFFIX) \
            else raster.stem
        truth_endmembers = raster.with_name(stem + TRUTH_ENDMEMBERS_SUFFIX)
    if not Path(truth_endmembers).is_file():
        raise InputError(f"truth endmember CSV not found: {truth_endmembers}")
    A_true = read_abundance_raster(raster)
    if A_true.shape[1:] != tuple(shape):
        raise InputError(f"the truth raster is {A_true.shape[1:]} pixels, the output {tuple(shape)}")
    key, E_true, names = read_endmember_csv(truth_endmembers)
    if E_true.shape[1] != A_true.shape[0]:
        raise InputError("the truth raster and the truth endmember CSV differ in endmember count")
    return A_true, (key, E_true, names)


def _read_truth_mat(path: Path, shape):
    """Truth from a MATLAB file (``A`` in column-major pixel order, ``M``), shaped like the output."""
    from ..io.mat_io import read_mat_truth

    A, M = read_mat_truth(path)
    if A is None or M is None:
        raise InputError(f"{path} lacks the 'A' (abundances) or 'M' (endmembers) variable")
    H, W = shape
    if A.shape[1:] != (H, W):
        if A.shape[1] * A.shape[2] != H * W:
            raise InputError(f"{path}: the truth has {A.shape[1]} x {A.shape[2]} pixels, "
                             f"the output {H} x {W}")
        # same pixels, other size guess: back to the column-major order, then to H x W
        A = A.reshape(A.shape[0], -1, order="F").reshape(A.shape[0], H, W, order="F")
    return A, (("band", np.arange(1, M.shape[0] + 1, dtype=np.float64)), M, None)


def _align_bands(key_est, key_true, E_true: np.ndarray) -> np.ndarray:
    """The truth's rows for the bands the estimate has (a run may have dropped bands)."""
    (kind_est, val_est), (kind_true, val_true) = key_est, key_true
    if len(val_est) == len(val_true):
        return E_true
    if kind_est == kind_true:
        rows = [np.flatnonzero(np.isclose(val_true, v, rtol=1e-5, atol=0)) for v in val_est]
        if all(len(r) == 1 for r in rows):
            return E_true[[r[0] for r in rows]]
    raise InputError(f"the estimate has {len(val_est)} bands and the truth {len(val_true)}, "
                     f"and the {kind_est} column does not say which truth bands to use")

"""The in-memory image the method works on, whatever file it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np


@dataclass
class Scene:
    """A hyperspectral image ready for unmixing.

    ``data`` is float32 of shape (bands, rows, cols), already scaled to the range the method
    expects (see ``scaling``); pixels where ``valid`` is False hold 0 and take no part in the
    fusion or the training, and come out as nodata. ``data`` is None for a scene read window
    by window (:class:`~dffn_qgis.core.io.raster_source.RasterSource`): then only the metadata and
    the validity mask are held, and the band count comes from ``band_names``.
    """

    data: Optional[np.ndarray]
    valid: np.ndarray
    wavelengths: Optional[np.ndarray] = None      # (bands,) for the selected bands, or None
    wavelength_units: Optional[str] = None         # "nm", "um", ... or None
    band_indices: List[int] = field(default_factory=list)   # 1-based source band numbers used
    band_names: List[str] = field(default_factory=list)
    geotransform: Optional[tuple] = None
    crs_wkt: Optional[str] = None
    nodata: Optional[float] = None                 # nodata value of the source, as written
    scaling: dict = field(default_factory=dict)    # how file values became ``data``
    source: str = ""
    notes: List[str] = field(default_factory=list)  # things the log should tell the user

    @property
    def shape(self):
        return (self.n_bands,) + tuple(self.valid.shape)

    @property
    def n_bands(self) -> int:
        return int(self.data.shape[0]) if self.data is not None else len(self.band_names)

    @property
    def height(self) -> int:
        return int(self.valid.shape[0])

    @property
    def width(self) -> int:
        return int(self.valid.shape[1])

    @property
    def n_valid(self) -> int:
        return int(np.count_nonzero(self.valid))

    @property
    def wavelengths_nm(self) -> Optional[np.ndarray]:
        """The band centres in nanometres, or None when the wavelengths or their unit are unknown."""
        if self.wavelengths is None or self.wavelength_units not in ("nm", "um"):
            return None
        return np.asarray(self.wavelengths, dtype=np.float64) * (1000.0 if self.wavelength_units == "um" else 1.0)

    def spectral_axis(self, n_bands: int) -> Tuple[str, np.ndarray]:
        """``("wavelength", values)`` when the scene knows its wavelengths, else ``("band", numbers)``
        with the source band numbers (1-based)."""
        if self.wavelengths is not None and len(self.wavelengths) == n_bands:
            return "wavelength", np.asarray(self.wavelengths, dtype=np.float64)
        if len(self.band_indices) == n_bands:
            return "band", np.asarray(self.band_indices, dtype=np.float64)
        return "band", np.arange(1, n_bands + 1, dtype=np.float64)

"""Reading rasters (GDAL, ENVI headers, wavelengths, bad bands, scaling, .mat), windows, spectral libraries and writing the outputs."""

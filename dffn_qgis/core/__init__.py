"""DFFN hyperspectral unmixing engine: everything that needs no QGIS.

Import the pieces from their modules (``dffn_qgis.core.pipeline`` for a whole run,
``dffn_qgis.core.ffm`` / ``model`` / ``train`` for the method itself).
"""

"""DFFN hyperspectral unmixing engine: everything that needs no QGIS.

Import the pieces from their modules (``dffn_qgis.core.run.pipeline`` for a whole run,
``dffn_qgis.core.method.ffm`` / ``model`` / ``train`` for the method itself).
"""

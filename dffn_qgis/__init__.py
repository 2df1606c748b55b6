"""dffn_qgis: DFFN hyperspectral unmixing, as a QGIS plugin and a Python package.

QGIS calls :func:`classFactory`; the plugin class is imported only then, so that importing the
package (the engine in ``dffn_qgis.core``, the command line ``python -m dffn_qgis``) needs no QGIS.
"""


def classFactory(iface):  # noqa: N802 - the name QGIS looks for
    from .plugin import DFFNPlugin
    return DFFNPlugin(iface)

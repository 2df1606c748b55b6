"""The QGIS Processing side of the plugin: provider ``dffn`` and algorithm ``dffn:unmix``.

Named ``processing_provider`` (not ``processing``) so it never shadows QGIS's own ``processing``.
"""

"""Exceptions shared by the engine, the command line and the QGIS algorithm."""


class DFFNError(Exception):
    """Base class of every error the engine raises on purpose."""


class InputError(DFFNError):
    """The user's input or parameters cannot be used; the message says why in one line.

    The command line turns it into exit code 2, QGIS into a QgsProcessingException.
    """


class Cancelled(DFFNError):
    """The run was cancelled through the ``is_cancelled`` callback."""

    def __init__(self, message: str = "cancelled by the user"):
        super().__init__(message)

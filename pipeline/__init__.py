"""Adjudication of advanced-imaging claim lines against prior authorizations."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("imaging-pa-adjudication")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

"""smsproxy: a batching, retrying, status-tracking proxy in front of a paid SMS provider.

This package is the domain: statuses, messages, validation, configuration, the
rules that guard them, and its adapters (:mod:`smsproxy.stores`,
:mod:`smsproxy.providers`). It knows nothing of actors or HTTP. Dependencies run
one way: :mod:`api` (the doors: HTTP, serving, the command line) imports
:mod:`actors` (the actors and their supervisor), which imports this package.
"""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("smsproxy")
    """The installed package's version (``pyproject.toml``), one number everywhere."""
except PackageNotFoundError:  # run from a tree that was never installed
    __version__ = "0.0.0+unknown"

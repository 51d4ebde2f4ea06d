"""smsproxy: a batching, retrying, status-tracking proxy in front of a paid SMS provider.

This package is the domain: statuses, messages, validation, configuration, the
rules that guard them, and its adapters (:mod:`smsproxy.stores`,
:mod:`smsproxy.providers`). It knows nothing of actors or HTTP. Dependencies run
one way: :mod:`api` (the doors: HTTP, serving, the command line) imports
:mod:`actors` (the actors and their supervisor), which imports this package.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

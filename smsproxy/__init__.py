"""smsproxy: a batching, retrying, status-tracking proxy in front of a paid SMS provider.

This package is the domain: statuses, messages, validation, configuration, the
store backends and the rules that guard them. It knows nothing of HTTP. The
concurrent parts live in :mod:`actors`, the HTTP front door in :mod:`api`;
:mod:`smsproxy.service` and :mod:`smsproxy.cli` put them together.
"""

__all__ = ["__version__"]

__version__ = "0.1.0"

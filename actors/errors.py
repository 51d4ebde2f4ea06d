"""How an actor fails to serve a request: the branch of the tree in
:mod:`smsproxy.errors` that belongs to the actor layer::

    SmsProxyError
    └── ActorError              an actor could not serve a request
        ├── ActorUnavailable    it has stopped (its inbox is closed)
        ├── ActorTimeout        it did not answer in time
        ├── ActorBusy           its inbox is full (a ``*_nowait`` call only)
        └── ActorFailed         its work for this request raised an unexpected error
                                (a bug, a value the driver cannot take): logged once
                                with the traceback where it happened; the actor
                                serves the next request
"""

from smsproxy.errors import SmsProxyError

__all__ = ["ActorBusy", "ActorError", "ActorFailed", "ActorTimeout", "ActorUnavailable"]


class ActorError(SmsProxyError):
    def __init__(self, actor: str, reason: str) -> None:
        super().__init__(f"{actor} actor {reason}")
        self.actor = actor


class ActorUnavailable(ActorError):
    def __init__(self, actor: str) -> None:
        super().__init__(actor, "is not running")


class ActorTimeout(ActorError):
    def __init__(self, actor: str, seconds: float) -> None:
        super().__init__(actor, f"did not answer within {seconds:g} s")


class ActorBusy(ActorError):
    def __init__(self, actor: str) -> None:
        super().__init__(actor, "has a full inbox")


class ActorFailed(ActorError):
    def __init__(self, actor: str, error: BaseException) -> None:
        super().__init__(actor, f"failed to serve a request: {type(error).__name__}")
        self.error_type = type(error).__name__

"""How an actor fails to serve a request: the branch of the tree in
:mod:`smsproxy.errors` that belongs to the actor layer::

    SmsProxyError
    └── ActorError              an actor could not serve a request
        ├── ActorUnavailable    it has stopped (its inbox is closed)
        └── ActorTimeout        it did not answer in time
"""

from smsproxy.errors import SmsProxyError

__all__ = ["ActorError", "ActorTimeout", "ActorUnavailable"]


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

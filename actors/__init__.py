"""The actors of smsproxy: trio tasks that each own their state.

Each module holds one actor: its request types, its ``run(..., task_status)``
loop, which hands back a handle once it is ready, and that handle. Callers only
ever use the handle; the state is reached through the actor's inbox alone.
"""

from actors._mailbox import receive_ready

__all__ = ["receive_ready"]

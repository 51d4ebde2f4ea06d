"""smsproxy's HTTP server: hypercorn's protocol handling, smsproxy's accept loop.

The wiring follows hypercorn's own ``trio`` worker (lifespan, then listeners, then
a graceful shutdown that gives open requests ``graceful_timeout`` to finish), with
:func:`api.connections.accept_connections` in place of ``trio.serve_listeners``,
so that connections are capped and held to time limits.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState, LifespanState
from hypercorn.utils import repr_socket_addr, wrap_app

from api.connections import Connection, ConnectionLimits, Connections, accept_connections

__all__ = ["serve_http"]


async def serve_http(
    app: Any,
    config: Config,
    limits: ConnectionLimits,
    *,
    shutdown_trigger: Callable[[], Awaitable[object]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``shutdown_trigger`` returns, then let open requests finish."""
    wrapped = wrap_app(app, config.wsgi_max_body_size, None)
    lifespan_state: LifespanState = {}
    lifespan = Lifespan(wrapped, config, lifespan_state)
    context = WorkerContext(None)
    registry = Connections(limits)

    def connection_for(stream: trio.SocketStream) -> Connection:
        state = ConnectionState(lifespan_state.copy())
        return Connection(registry, wrapped, config, context, state, stream)

    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as connections:
            sockets = config.create_sockets().insecure_sockets
            for sock in sockets:
                sock.listen(config.backlog)
            listeners = [trio.SocketListener(trio.socket.from_stdlib_socket(s)) for s in sockets]
            task_status.started(
                [f"http://{repr_socket_addr(s.family, s.getsockname())}" for s in sockets]
            )
            try:
                async with trio.open_nursery() as accepting:
                    for listener in listeners:
                        accepting.start_soon(
                            accept_connections, listener, registry, connection_for, connections
                        )
                    await shutdown_trigger()
                    accepting.cancel_scope.cancel()
                for listener in listeners:
                    await listener.aclose()
            finally:
                await context.terminated.set()  # no connection starts another request
                registry.close_idle(len(registry.open))
                connections.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()

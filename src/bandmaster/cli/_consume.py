"""``bandmaster consume``: start runs from a RabbitMQ queue (``bandmaster.triggers._amqp``).

The consumer starts runs; ``bandmaster worker`` processes (or Temporal workers) execute them.
SIGTERM/SIGINT stop it: messages in flight and not yet acknowledged go back to the queue.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Annotated

import typer

from bandmaster.cli import _console as ui
from bandmaster.cli._backends import Where, build
from bandmaster.cli._console import missing_extra
from bandmaster.cli._loader import load_workflows
from bandmaster.cli._temporal import (
    BackendOption,
    NamespaceOption,
    TargetOption,
    TaskQueueOption,
)
from bandmaster.errors import BandmasterError


def consume(
    url: Annotated[str, typer.Argument(help="Broker URL, amqp://user:password@host:5672/vhost")],
    modules: Annotated[list[str], typer.Argument(help="Modules or files defining the workflow")],
    queue: Annotated[str, typer.Option("--queue", help="Queue to consume (declared durable)")],
    workflow: Annotated[str, typer.Option("--workflow", help="Workflow each message starts")],
    db: Annotated[
        str | None, typer.Option("--db", help="Journal path [default: $BANDMASTER_DB or ./bandmaster.db]")
    ] = None,
    prefetch: Annotated[int, typer.Option(min=1, help="Messages in flight at once (backpressure)")] = 100,
    dead_letter: Annotated[
        str | None, typer.Option("--dead-letter", help="Queue for poison messages [default: QUEUE.dead]")
    ] = None,
    backend: BackendOption = "embedded",
    target: TargetOption = "localhost:7233",
    namespace: NamespaceOption = "default",
    task_queue: TaskQueueOption = "bandmaster",
) -> None:
    """Start one run of --workflow per message of --queue; the message id is the run id."""
    try:
        from bandmaster.triggers import Consumer
    except ImportError as exc:
        raise ui.fail(missing_extra("bandmaster consume", "amqp", exc)) from exc
    try:
        workflows = load_workflows(modules)
        where = Where(backend, db, target, namespace, task_queue)
        engine = build(where, workflows=workflows, must_exist=False)
        consumer = Consumer(engine, url, queue, workflow, prefetch=prefetch, dead_letter=dead_letter)
    except BandmasterError as exc:
        raise ui.fail(str(exc)) from exc

    async def serve() -> None:
        await engine.open()
        try:
            loop = asyncio.get_running_loop()
            task = asyncio.create_task(consumer.run(ready := asyncio.Event()))
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, task.cancel)
            waiter = asyncio.create_task(ready.wait())
            await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
            if ready.is_set():
                ui.line("consuming ", (queue, "bold"), " into ", (workflow, "bold"), err=True)
            try:
                await task
            except asyncio.CancelledError:
                pass
            finally:
                waiter.cancel()
        finally:
            await engine.close()
        ui.line(f"stopped: {consumer.started} messages started runs, {consumer.dead} dead-lettered", err=True)

    try:
        asyncio.run(serve())
    except BandmasterError as exc:
        raise ui.fail(str(exc), 1) from exc
    except OSError as exc:  # the broker is unreachable (aio-pika raises connection errors as OSError)
        raise ui.fail(f"cannot reach the broker: {exc}", 1) from exc

"""The conformance executor: what the A2A conformance kit (../shared/tools/a2a-tck) expects of an agent, and
nothing a real node does. Active only when a node is started for conformance testing (`sudocode-fed serve
--a2a-conformance`, or FEDERATION_A2A_CONFORMANCE=1): then a message that carries no federation message is
handled here instead of being answered with help.

The kit chooses the behaviour it tests by the prefix of the message's `messageId` (its scenarios/*.feature):
complete the task, add a text/file/data artifact, answer with a message, ask for input, reject, stream. This
is its reference agent's executor (sut/a2a-python/sut_agent.py, Apache-2.0, a2aproject/a2a-tck 1.0-dev) run
by the SDK's own request handler over an in-memory task store: these tasks are the kit's, not requests, and
live as long as the process.
"""

from __future__ import annotations

import asyncio

from a2a.server.agent_execution.agent_executor import AgentExecutor
from a2a.server.agent_execution.context import RequestContext
from a2a.server.events.event_queue import EventQueue
from a2a.server.request_handlers import DefaultRequestHandler, RequestHandler
from a2a.server.tasks.base_push_notification_sender import BasePushNotificationSender
from a2a.server.tasks.inmemory_push_notification_config_store import InMemoryPushNotificationConfigStore
from a2a.server.tasks.inmemory_task_store import InMemoryTaskStore
from a2a.server.tasks.task_updater import TaskUpdater
from a2a.types import AgentCard, Part, Task, TaskState, TaskStatus
from a2a.utils.errors import A2AError
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Value

# prefix -> what the kit expects; the order matters where one prefix starts another.
_ARTIFACTS = {
    "tck-stream-artifact-text": [Part(text="Streamed text content")],
    "tck-stream-artifact-file": [Part(raw=b"tck", media_type="text/plain", filename="output.txt")],
    "tck-stream-ordering-001": [Part(text="Ordered output")],
    "tck-stream-001": [Part(text="Stream hello from TCK")],
    "tck-stream-003": [Part(text="Stream task lifecycle")],
}
_QUICK_ARTIFACTS = {
    "tck-artifact-file-url": [
        Part(url="https://example.com/output.txt", media_type="text/plain", filename="output.txt")
    ],
    "tck-artifact-text": [Part(text="Generated text content")],
    "tck-artifact-file": [Part(raw=b"tck", media_type="text/plain", filename="output.txt")],
}


class ConformanceExecutor(AgentExecutor):
    """The kit's scenarios, by messageId prefix."""

    async def execute(self, context: RequestContext, event_queue: EventQueue) -> None:  # noqa: C901, PLR0911
        if context.task_id is None or context.context_id is None:
            return
        # A follow-up to a task belongs to that task's context, whatever context the follow-up names.
        context_id = context.current_task.context_id if context.current_task else context.context_id
        updater = TaskUpdater(event_queue, context.task_id, context_id)
        message = context.message
        if message is None:
            await updater.complete(updater.new_agent_message([Part(text="No message provided")]))
            return
        message_id = message.message_id
        if context.current_task is None and not message_id.startswith("tck-message-response"):
            # a2a-sdk 1.3 wants the Task before its first update (the kit's agent was written for 1.0a0).
            await event_queue.enqueue_event(
                Task(
                    id=context.task_id,
                    context_id=context_id,
                    status=TaskStatus(state=TaskState.TASK_STATE_SUBMITTED),
                    history=[message],
                )
            )
        if message_id.startswith("tck-stream-artifact-chunked"):
            await updater.start_work()
            await updater.add_artifact(parts=[Part(text="chunk-1 ")], append=True)
            await updater.add_artifact(parts=[Part(text="chunk-2")], append=True, last_chunk=True)
            await updater.complete()
            return
        if message_id.startswith("test-resubscribe-message-id"):
            await updater.start_work()
            await asyncio.sleep(4)
            await updater.complete()
            return
        for prefix, parts in _ARTIFACTS.items():
            if message_id.startswith(prefix):
                await updater.start_work()
                await updater.add_artifact(parts=parts)
                await updater.complete()
                return
        for prefix, parts in _QUICK_ARTIFACTS.items():
            if message_id.startswith(prefix):
                await updater.add_artifact(parts=parts)
                await updater.complete()
                return
        if message_id.startswith("tck-message-response"):
            await event_queue.enqueue_event(updater.new_agent_message([Part(text="Direct message response")]))
            return
        if message_id.startswith("tck-input-required"):
            await updater.requires_input()
            return
        if message_id.startswith("tck-complete-task"):
            await updater.complete(updater.new_agent_message([Part(text="Hello from TCK")]))
            return
        if message_id.startswith("tck-artifact-data"):
            data = json_format.Parse('{"key": "value", "count": 42}', Value())
            await updater.add_artifact(parts=[Part(data=data)])
            await updater.complete()
            return
        if message_id.startswith("tck-reject-task"):
            raise A2AError("rejected")
        if message_id.startswith("tck-stream-002"):
            await updater.complete()
            return
        await updater.complete(updater.new_agent_message([Part(text="Unhandled messageId prefix: " + message_id)]))

    async def cancel(self, context: RequestContext, event_queue: EventQueue) -> None:
        if context.task_id is None or context.context_id is None:
            return
        await TaskUpdater(event_queue, context.task_id, context.context_id).cancel()


def conformance_handler(card: AgentCard) -> RequestHandler:
    """The SDK's request handler running the ConformanceExecutor, for agents.a2a_server to hand what is not
    federation traffic to."""
    import httpx

    push_configs = InMemoryPushNotificationConfigStore()
    return DefaultRequestHandler(
        agent_executor=ConformanceExecutor(),
        task_store=InMemoryTaskStore(),
        agent_card=card,
        push_config_store=push_configs,
        push_sender=BasePushNotificationSender(httpx.AsyncClient(timeout=10), push_configs),
    )

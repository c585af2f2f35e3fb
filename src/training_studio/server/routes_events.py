"""`GET /api/training/events`: the live-update stream (server-sent events) over the process's EventHub.

The route only checks that the hub still accepts streams and picks the resume point (the standard
`Last-Event-ID` header, or `?lastEventId=` for clients that cannot set headers); the stream itself is
`events.EventStreamResponse`. The wire format is in docs/api.md ("Live updates").
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query

from training_studio.server.context import ServerContext, server_context
from training_studio.server.errors import ApiError, error_responses
from training_studio.server.events import EventStreamResponse

router = APIRouter(tags=["events"])

EVENTS_PATH = "/api/training/events"

_STREAM_DESCRIPTION = (
    "An endless text/event-stream (it ends only when the server stops or drops a client that fell too far "
    "behind). Starts with `retry: 3000`, then `hello` (no Last-Event-ID), the catch-up (the latest state of "
    "every entity changed after Last-Event-ID), or `reset` (that revision is unknown here: fetch everything); "
    "then `job`, `dataset` and `model` events as things change, and a `: keep-alive` comment every 15 s. "
    "Every event's `id:` is a resume cursor for Last-Event-ID. See docs/api.md, Live updates.")


# One event of the stream (OpenAPI 3.1 has no itemSchema yet; tools such as schemathesis read `schema` of a
# text/event-stream as the schema of each event). `data` is JSON: see docs/api.md for each type's body.
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["hello", "reset", "job", "dataset", "model"],
                  "description": "clients ignore event types they do not know"},
        "id": {"type": "string", "pattern": "^[0-9]+$", "description": "resume cursor (a revision)"},
        "data": {"type": "string", "contentMediaType": "application/json"},
        "retry": {"type": "integer", "minimum": 0},
    },
}


def _json_error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    # error_responses() lets FastAPI pick the media type, which would be the stream's here; errors are JSON.
    return {status: {"description": entry["description"], "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
            for status, entry in error_responses(*statuses).items()}


@router.get(EVENTS_PATH, status_code=200, response_class=EventStreamResponse,
            summary="Live updates (server-sent events)", description=_STREAM_DESCRIPTION,
            responses={200: {"description": "The event stream", "content": {
                           "text/event-stream": {"schema": _EVENT_SCHEMA}}},
                       **_json_error_responses(503)})
async def events(last_event_id: str | None = Header(
                     None, alias="Last-Event-ID", max_length=200,
                     description="resume after this event id (a revision); unknown ones get `reset`"),
                 last_event_id_query: str | None = Query(
                     None, alias="lastEventId", max_length=200, description="the same, for clients without headers"),
                 ctx: ServerContext = Depends(server_context)) -> EventStreamResponse:
    hub = ctx.events
    if hub is None or hub.closed:
        raise ApiError(503, "shutting_down", "The server is stopping; reconnect to it once it runs again.")
    resume = last_event_id if last_event_id is not None else last_event_id_query
    return EventStreamResponse(hub, ctx.storage, resume)

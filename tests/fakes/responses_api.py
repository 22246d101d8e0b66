"""A loopback fake of the OpenAI-compatible Responses, Files and Containers API, for tests.

The real `AsyncOpenAI` client talks to it over HTTP on 127.0.0.1 (random port). Every stream
event it sends is validated with `TypeAdapter(openai.types.responses.ResponseStreamEvent)` first,
and its JSON objects with the SDK's models (`FileObject`, `FileDeleted`, `Response`), so it cannot
drift from the protocol the SDK knows. Protocol problems (an invalid event, a request the fake
cannot serve) are collected in `fake.errors` and raised when the `running_responses_fake()`
context exits, so a test fails even if the client swallowed the HTTP 500 it got.

Quick start::

    from tests.fakes.responses_api import Scenario, running_responses_fake, sandbox_link

    async with running_responses_fake(provider="openai") as fake:
        client = fake.client()                      # AsyncOpenAI(base_url=fake.base_url, ...)
        fake.enqueue(
            Scenario()
            .code("print(df.shape)", logs="(3, 2)\\n", saves={"chart.png": PNG})
            .text(f"Three rows. Chart: {sandbox_link('chart.png')}")
            .usage(120, 40)
        )
        ... run the code under test ...
        body = fake.response_requests()[-1].json     # what the client sent
        assert fake.uploads == [...]

Endpoints (under `/v1`):

- `POST /files` (multipart `file` + `purpose`) → FileObject; `GET /files/{id}` → FileObject or 404;
  `GET /files/{id}/content`; `DELETE /files/{id}` → FileDeleted (404 if unknown).
- `GET /containers/{cid}/files/{fid}/content` — generated files in `provider="openai"` mode.
- `POST /responses` with `stream=true` → SSE built from the next queued `Scenario` (or
  `fake.default_scenario`, a Scenario or a callable taking the request body); `GET /responses/{id}`
  (code items' `outputs` are `null` in `"openai"` mode unless the query has
  `include[]=code_interpreter_call.outputs`, as on create); `POST /responses/{id}/cancel` (only a
  response created with `background=true`, else 400, as OpenAI documents; recorded in
  `fake.cancelled`). `background=true` is refused with a 400 naming `background` when
  `fake.refuse_background` is set, and answered with plain JSON (no stream; the response
  finishes by the second GET) when `fake.background_ignores_stream` is set.

Request checks, as the real services do: an unknown `previous_response_id` → 400
(`param="previous_response_id"`); a previous response whose container was expired with
`fake.expire_containers()` → 400 "Container is expired."; a `file_ids` entry that is not stored
(see `fake.vanish_file(id)`) → `fake.missing_file_status` (400) naming the file; an unknown key in
`container` → 400 `unknown_parameter`; an invalid `include` value → 400.

Provider modes: `"openai"` — generated files get `cfile_…` ids, live in the container and are
served only by the containers endpoint; `outputs` of code items are `null` unless the request has
`include=["code_interpreter_call.outputs"]`. `"yandex"` — generated files get opaque 20-character
ids and are served only by `GET /files/{id}/content`; outputs are always returned.

Scenario builder (each method returns the scenario):

- content: `.code(code, logs=, images=[png bytes], saves={name: bytes}, chunks=)`,
  `.text(text, chunks=, cite=None|[names])` (cites the files saved so far and not yet cited; the
  annotation span covers the `[name](sandbox:/mnt/data/name)` link if the text has one, else 0..0),
  `.reasoning(text)`, `.usage(input_tokens, output_tokens)`;
- failures: `.http_error(status, times=1, message=, code=, retry_after=)` (for the first attempts),
  `.error_event(after=N, code=, message=)` (then the stream stays open until the client leaves),
  `.fail(code=, message=)` (`response.failed`), `.incomplete(reason)`, `.cut(after=N,
  stored_status="in_progress", completes_after=None)` (end the stream cleanly after N events; with
  `completes_after=K` the stored response turns into the finished one at the K-th
  `GET /responses/{id}`, as a response still running server-side would), `.drop(after=N,
  completes_after=None)` (break the connection instead), `.stall(after=N,
  seconds=None, gate=None)` (stop sending until the gate is set, the time passes or the client
  disconnects), `.write_slowly(seconds)` (a pause before each answer-text chunk),
  `.without_stream_annotations()` (citations only visible via `GET /responses/{id}`);
- `Scenario.replay(path, files={filename: bytes}, fix=None)` replays an SSE transcript verbatim
  (each event validated; `fix` may patch an event before validation, and then the patched JSON is
  sent instead of the original line).

Observations: `fake.requests` (every `RecordedRequest`: method, path, query, headers with
lower-case names, json, form, file_name, file_bytes), `fake.response_requests()`, `fake.uploads`
(`StoredFile`s uploaded via POST /files), `fake.files`, `fake.responses` (stored Response dicts),
`fake.disconnects` (ids of responses whose stream the client closed early), `fake.cancelled`
(ids cancelled with `POST /responses/{id}/cancel`), `fake.retrieves` (ids, one per GET) and
`await fake.wait_for_disconnect()`. Hooks: `fake.upload_gate` (an `asyncio.Event` uploads wait
for), `fake.vanish_file(id)`, `fake.expire_containers()`, `fake.add_file(...)`,
`fake.require_api_key`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import secrets
import string
import time
import typing
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from aiohttp import web
from openai.types import FileDeleted, FileObject
from openai.types.responses import Response, ResponseIncludable, ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
INCLUDABLE = frozenset(typing.get_args(ResponseIncludable))
CONTAINER_KEYS = frozenset({"type", "file_ids", "memory_limit", "network_policy"})
PROVIDERS = ("openai", "yandex")
POLL_INTERVAL = 0.005


def sandbox_link(name: str) -> str:
    """The Markdown link a model writes for a file it saved."""
    return f"[{name}](sandbox:/mnt/data/{name})"


def fill_usage_details(event: dict[str, Any]) -> dict[str, Any]:
    """Add `usage.input_tokens_details.cache_write_tokens` (required by openai 3.57's
    `InputTokensDetails`) when a transcript lacks it; leaves everything else untouched."""
    response = event.get("response")
    if isinstance(response, dict) and isinstance(response.get("usage"), dict):
        details = response["usage"].get("input_tokens_details")
        if isinstance(details, dict) and "cache_write_tokens" not in details:
            event = json.loads(json.dumps(event))
            event["response"]["usage"]["input_tokens_details"]["cache_write_tokens"] = 0
    return event


class ProtocolError(AssertionError):
    """The fake was asked to send something the SDK's models reject, or could not serve."""


# ---- recorded data ------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None
    file_bytes: bytes | None = None


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int
    container_id: str | None = None  # set for generated files

    def as_object(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
        }


# ---- scenarios ----------------------------------------------------------------------------


@dataclass
class _Code:
    code: str
    logs: str | None
    images: list[bytes]
    saves: dict[str, bytes]
    chunks: int


@dataclass
class _Text:
    text: str
    chunks: int
    cite: list[str] | None


@dataclass
class _Reasoning:
    text: str


@dataclass
class _HttpError:
    status: int
    times: int
    message: str
    code: str | None
    type: str
    retry_after: str | None


class Scenario:
    """What the fake does for one `POST /v1/responses` (see the module docstring)."""

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.items: list[_Code | _Text | _Reasoning] = []
        self.http_errors: deque[_HttpError] = deque()
        self.terminal = "completed"
        self.failure: tuple[str, str] = ("server_error", "The server had an error.")
        self.incomplete_reason = "max_output_tokens"
        self.input_tokens = 120
        self.output_tokens = 80
        self.cut_after: int | None = None
        self.cut_stored_status = "in_progress"
        self.cut_completes_after: int | None = None
        self.drop_after: int | None = None
        self.stall_after: int | None = None
        self.stall_seconds: float | None = None
        self.stall_gate: asyncio.Event | None = None
        self.text_pause: float | None = None
        self.error_after: int | None = None
        self.error: tuple[str, str] = ("server_error", "An error occurred while processing.")
        self.stream_annotations = True
        self.raw_blocks: list[tuple[str, dict[str, Any]]] | None = None
        self.raw_files: dict[str, bytes] = {}

    # content
    def code(
        self,
        code: str,
        *,
        logs: str | None = "",
        images: Sequence[bytes] = (),
        saves: Mapping[str, bytes] | None = None,
        chunks: int = 3,
    ) -> Scenario:
        self.items.append(_Code(code, logs, list(images), dict(saves or {}), max(1, chunks)))
        return self

    def text(self, text: str, *, chunks: int = 4, cite: Sequence[str] | None = None) -> Scenario:
        self.items.append(_Text(text, max(1, chunks), None if cite is None else list(cite)))
        return self

    def reasoning(self, text: str) -> Scenario:
        self.items.append(_Reasoning(text))
        return self

    def usage(self, input_tokens: int, output_tokens: int) -> Scenario:
        self.input_tokens, self.output_tokens = input_tokens, output_tokens
        return self

    # failures
    def http_error(
        self,
        status: int,
        *,
        times: int = 1,
        message: str | None = None,
        code: str | None = None,
        retry_after: str | None = None,
    ) -> Scenario:
        kind = {429: "rate_limit_exceeded", 401: "invalid_api_key"}.get(status)
        error_type = "requests" if status == 429 else "server_error"
        if status < 500 and status != 429:
            error_type = "invalid_request_error"
        self.http_errors.append(
            _HttpError(
                status,
                times,
                message or f"Fake HTTP {status}",
                code or kind,
                error_type,
                retry_after,
            )
        )
        return self

    def error_event(
        self, *, after: int, code: str = "server_error", message: str | None = None
    ) -> Scenario:
        self.error_after = after
        self.error = (code, message or "An error occurred while processing your request.")
        return self

    def fail(self, *, code: str = "server_error", message: str = "The model failed.") -> Scenario:
        self.terminal = "failed"
        self.failure = (code, message)
        return self

    def incomplete(self, reason: str = "max_output_tokens") -> Scenario:
        self.terminal = "incomplete"
        self.incomplete_reason = reason
        return self

    def cut(
        self, *, after: int, stored_status: str = "in_progress", completes_after: int | None = None
    ) -> Scenario:
        """End the stream cleanly after `after` events. `stored_status="completed"` makes
        `GET /responses/{id}` report the response as completed anyway; `completes_after=K` makes
        it report `stored_status` K-1 times, then the finished response."""
        self.cut_after = after
        self.cut_stored_status = stored_status
        self.cut_completes_after = completes_after
        return self

    def drop(self, *, after: int, completes_after: int | None = None) -> Scenario:
        """Break the connection after `after` events (no clean end of the chunked body), as a
        network failure would; `completes_after` as for `cut`."""
        self.drop_after = after
        self.cut_completes_after = completes_after
        return self

    def stall(
        self, *, after: int, seconds: float | None = None, gate: asyncio.Event | None = None
    ) -> Scenario:
        self.stall_after = after
        self.stall_seconds = seconds
        self.stall_gate = gate
        return self

    def write_slowly(self, seconds: float) -> Scenario:
        """Pause `seconds` before each chunk of answer text (a model writing a long answer)."""
        self.text_pause = seconds
        return self

    def without_stream_annotations(self) -> Scenario:
        self.stream_annotations = False
        return self

    @classmethod
    def replay(
        cls,
        path: str | Path,
        *,
        files: Mapping[str, bytes] | None = None,
        fix: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> Scenario:
        """Replay an SSE transcript; `files` maps cited filenames to their bytes."""
        scenario = cls(name=f"replay:{Path(path).name}")
        blocks: list[tuple[str, dict[str, Any]]] = []
        raw = Path(path).read_text(encoding="utf-8")
        for block in raw.split("\n\n"):
            if not block.strip():
                continue
            data_lines = [ln[5:].lstrip() for ln in block.splitlines() if ln.startswith("data:")]
            original = json.loads("\n".join(data_lines))
            event = fix(original) if fix else original
            text = block + "\n\n"
            if event != original:
                text = f"event: {event['type']}\ndata: {json.dumps(event)}\n\n"
            blocks.append((text, event))
        scenario.raw_blocks = blocks
        scenario.raw_files = dict(files or {})
        return scenario


# ---- the server ---------------------------------------------------------------------------


class _Disconnected(Exception):
    pass


def _error_body(
    message: str,
    *,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: Any = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class ResponsesFake:
    def __init__(self, provider: str = "openai") -> None:
        if provider not in PROVIDERS:
            raise ValueError(f"provider must be one of {PROVIDERS}")
        self.provider = provider
        self.url = ""
        self.base_url = ""
        self.requests: list[RecordedRequest] = []
        self.uploads: list[StoredFile] = []
        self.files: dict[str, StoredFile] = {}
        self.container_files: dict[tuple[str, str], StoredFile] = {}
        self.responses: dict[str, dict[str, Any]] = {}
        self.response_containers: dict[str, str] = {}
        self.expired_containers: set[str] = set()
        self.scenarios: deque[Scenario] = deque()
        self.default_scenario: Scenario | Callable[[dict[str, Any]], Scenario] | None = None
        self.disconnects: list[str] = []
        self.cancelled: list[str] = []
        self.retrieves: list[str] = []
        self.refuse_background = False
        self.background_ignores_stream = False
        self._completions: dict[str, tuple[int, dict[str, Any]]] = {}
        self.errors: list[str] = []
        self.upload_gate: asyncio.Event | None = None
        self.missing_file_status = 400
        self.require_api_key: str | None = None
        self._disconnected = asyncio.Event()
        self._ids = itertools.count(1)
        self._runner: web.AppRunner | None = None
        self._clients: list[openai.AsyncOpenAI] = []
        self._closing = False

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        app = web.Application(client_max_size=2**31)
        app.router.add_post("/v1/files", self._create_file)
        app.router.add_get("/v1/files/{file_id}", self._retrieve_file)
        app.router.add_get("/v1/files/{file_id}/content", self._file_content)
        app.router.add_delete("/v1/files/{file_id}", self._delete_file)
        app.router.add_get(
            "/v1/containers/{container_id}/files/{file_id}/content", self._container_file_content
        )
        app.router.add_post("/v1/responses", self._create_response)
        app.router.add_get("/v1/responses/{response_id}", self._retrieve_response)
        app.router.add_post("/v1/responses/{response_id}/cancel", self._cancel_response)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.url}/v1"

    async def stop(self) -> None:
        self._closing = True
        for client in self._clients:
            await client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def check(self) -> None:
        """Raise `ProtocolError` if anything went wrong on the fake's side."""
        if self.errors:
            raise ProtocolError("responses fake: " + "; ".join(self.errors))

    def client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        """A real `AsyncOpenAI` pointed at the fake (closed when the fake stops)."""
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=self.base_url, **kwargs)
        self._clients.append(client)
        return client

    # ---- test controls --------------------------------------------------------------------

    def enqueue(self, *scenarios: Scenario) -> None:
        self.scenarios.extend(scenarios)

    def vanish_file(self, file_id: str) -> None:
        """Forget a stored file, as if it expired."""
        self.files.pop(file_id, None)

    def expire_containers(self) -> None:
        self.expired_containers.update(self.response_containers.values())

    def add_file(self, data: bytes, filename: str = "data.csv", purpose: str = "assistants") -> str:
        stored = StoredFile(self._file_id(), filename, purpose, data, int(time.time()))
        self.files[stored.id] = stored
        return stored.id

    def response_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]

    def paths(self, method: str | None = None) -> list[str]:
        return [r.path for r in self.requests if method is None or r.method == method]

    async def wait_for_disconnect(self, timeout: float = 5.0) -> bool:
        try:
            await asyncio.wait_for(self._disconnected.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ---- ids ------------------------------------------------------------------------------

    def _next(self) -> int:
        return next(self._ids)

    def _file_id(self) -> str:
        if self.provider == "yandex":
            alphabet = string.ascii_lowercase + string.digits
            return "fvt" + "".join(secrets.choice(alphabet) for _ in range(17))
        return f"file-{self._next():06d}"

    def _generated_id(self) -> str:
        return self._file_id() if self.provider == "yandex" else f"cfile_{self._next():06d}"

    # ---- helpers ---------------------------------------------------------------------------

    async def _record(self, request: web.Request, *, body: bool = True) -> RecordedRequest:
        recorded = RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        if body and request.can_read_body and request.content_type == "application/json":
            recorded.json = await request.json()
        self.requests.append(recorded)
        return recorded

    def _fail_loudly(self, message: str) -> web.Response:
        self.errors.append(message)
        return web.json_response(_error_body(message, type_="server_error"), status=500)

    def _auth_error(self, recorded: RecordedRequest) -> web.Response | None:
        header = recorded.headers.get("authorization", "")
        if not header.startswith("Bearer ") or (
            self.require_api_key is not None and header != f"Bearer {self.require_api_key}"
        ):
            return web.json_response(
                _error_body("Incorrect API key provided.", code="invalid_api_key"), status=401
            )
        return None

    def _validated(self, model: Any, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            model.model_validate(payload)
        except ValidationError as error:
            self.errors.append(f"{model.__name__} rejected by the SDK model: {error}")
            raise
        return payload

    async def _wait(
        self,
        request: web.Request,
        *,
        gate: asyncio.Event | None = None,
        seconds: float | None = None,
    ) -> None:
        """Sleep until the gate opens / the time passes; raise _Disconnected if the client
        leaves (or the fake stops) first."""
        loop = asyncio.get_running_loop()
        deadline = None if seconds is None else loop.time() + seconds
        while True:
            if self._closing or request.transport is None or request.transport.is_closing():
                raise _Disconnected
            if gate is not None and gate.is_set():
                return
            if deadline is not None and loop.time() >= deadline:
                return
            await asyncio.sleep(POLL_INTERVAL)

    # ---- files ----------------------------------------------------------------------------

    async def _create_file(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request, body=False)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        data, filename = b"", "upload"
        try:
            async for part in await request.multipart():
                if part.name == "file":
                    filename = part.filename or filename
                    data = bytes(await part.read())
                elif part.name is not None:
                    recorded.form[part.name] = await part.text()
        except Exception as error:
            if request.transport is None or request.transport.is_closing():
                self._note_disconnect(f"upload:{filename}")  # the client gave up mid-upload
                return web.Response(status=499)
            return self._fail_loudly(f"unreadable upload: {error!r}")
        recorded.file_name, recorded.file_bytes = filename, data
        purpose = recorded.form.get("purpose")
        if purpose not in {"assistants", "batch", "fine-tune", "vision", "user_data", "evals"}:
            return web.json_response(
                _error_body(f"Invalid purpose {purpose!r}", param="purpose"), status=400
            )
        if self.upload_gate is not None:
            try:
                await self._wait(request, gate=self.upload_gate)
            except _Disconnected:
                self._note_disconnect(f"upload:{filename}")
                return web.Response(status=499)
        stored = StoredFile(self._file_id(), filename, purpose, data, int(time.time()))
        self.files[stored.id] = stored
        self.uploads.append(stored)
        return web.json_response(self._validated(FileObject, stored.as_object()))

    def _file_not_found(self, file_id: str) -> web.Response:
        return web.json_response(
            _error_body(f"No such File object: {file_id}", param="id"), status=404
        )

    async def _retrieve_file(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return self._file_not_found(request.match_info["file_id"])
        return web.json_response(self._validated(FileObject, stored.as_object()))

    async def _file_content(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        stored = self.files.get(request.match_info["file_id"])
        if stored is None:
            return self._file_not_found(request.match_info["file_id"])
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def _delete_file(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        file_id = request.match_info["file_id"]
        if self.files.pop(file_id, None) is None:
            return self._file_not_found(file_id)
        payload = {"id": file_id, "object": "file", "deleted": True}
        return web.json_response(self._validated(FileDeleted, payload))

    async def _container_file_content(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        key = (request.match_info["container_id"], request.match_info["file_id"])
        stored = self.container_files.get(key)
        if stored is None:
            return web.json_response(
                _error_body(f"Container file {key[1]} not found in {key[0]}."), status=404
            )
        return web.Response(body=stored.data, content_type="application/octet-stream")

    # ---- responses ------------------------------------------------------------------------

    async def _retrieve_response(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        response_id = request.match_info["response_id"]
        stored = self.responses.get(response_id)
        if stored is None:
            return self._response_not_found(response_id)
        self.retrieves.append(response_id)
        pending = self._completions.get(response_id)
        if pending is not None:
            remaining, final = pending
            if remaining <= 1:
                del self._completions[response_id]
                stored = self.responses[response_id] = final
            else:
                self._completions[response_id] = (remaining - 1, final)
        include = request.query.getall("include[]", []) + request.query.getall("include", [])
        if self.provider == "openai" and "code_interpreter_call.outputs" not in include:
            stored = {
                **stored,
                "output": [
                    {**item, "outputs": None}
                    if item.get("type") == "code_interpreter_call"
                    else item
                    for item in stored["output"]
                ],
            }
        return web.json_response(self._validated(Response, stored))

    def _response_not_found(self, response_id: str) -> web.Response:
        return web.json_response(
            _error_body(f"Response with id '{response_id}' not found.", param="response_id"),
            status=404,
        )

    async def _cancel_response(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        response_id = request.match_info["response_id"]
        stored = self.responses.get(response_id)
        if stored is None:
            return self._response_not_found(response_id)
        if not stored.get("background"):
            return web.json_response(
                _error_body("Only responses created with background=true can be cancelled."),
                status=400,
            )
        self.cancelled.append(response_id)
        self._completions.pop(response_id, None)
        if stored.get("status") in ("queued", "in_progress"):
            stored = self.responses[response_id] = {**stored, "status": "cancelled"}
        return web.json_response(self._validated(Response, stored))

    def _check_body(self, body: Any) -> web.Response | None:
        """The checks a real server makes before it starts a response."""
        if not isinstance(body, dict):
            return web.json_response(_error_body("Expected a JSON object."), status=400)
        if not isinstance(body.get("model"), str) or not body["model"]:
            return web.json_response(_error_body("Missing model.", param="model"), status=400)
        if not isinstance(body.get("input"), str | list):
            return web.json_response(_error_body("Missing input.", param="input"), status=400)
        if body.get("stream") is not True:
            return self._fail_loudly("the fake serves POST /v1/responses with stream=true only")
        if "background" in body and not isinstance(body["background"], bool):
            return web.json_response(
                _error_body("Invalid background.", param="background"), status=400
            )
        if body.get("background") and self.refuse_background:
            return web.json_response(
                _error_body(
                    "Unsupported parameter: 'background'.",
                    param="background",
                    code="unsupported_parameter",
                ),
                status=400,
            )
        for value in body.get("include") or []:
            if value not in INCLUDABLE:
                return web.json_response(
                    _error_body(f"Invalid value: '{value}'.", param="include"), status=400
                )
        for position, tool in enumerate(body.get("tools") or []):
            if tool.get("type") != "code_interpreter":
                continue
            container = tool.get("container")
            if isinstance(container, str):
                continue
            if not isinstance(container, dict) or container.get("type") != "auto":
                return web.json_response(
                    _error_body("Invalid container.", param=f"tools[{position}].container"),
                    status=400,
                )
            for key in container:
                if key not in CONTAINER_KEYS:
                    param = f"tools[{position}].container.{key}"
                    return web.json_response(
                        _error_body(
                            f"Unknown parameter: '{param}'.", param=param, code="unknown_parameter"
                        ),
                        status=400,
                    )
            for file_id in container.get("file_ids") or []:
                if file_id not in self.files:
                    return web.json_response(
                        _error_body(
                            f"File '{file_id}' not found.",
                            param=f"tools[{position}].container.file_ids",
                        ),
                        status=self.missing_file_status,
                    )
        previous = body.get("previous_response_id")
        if previous is not None:
            if previous not in self.responses:
                return web.json_response(
                    _error_body(
                        f"Previous response with id '{previous}' not found.",
                        param="previous_response_id",
                        code="previous_response_not_found",
                    ),
                    status=400,
                )
            if self.response_containers.get(previous) in self.expired_containers:
                return web.json_response(_error_body("Container is expired."), status=400)
        return None

    def _next_scenario(self, body: dict[str, Any]) -> Scenario | None:
        if self.scenarios:
            return self.scenarios[0]
        if self.default_scenario is None:
            return None
        if isinstance(self.default_scenario, Scenario):
            return self.default_scenario
        return self.default_scenario(body)

    async def _create_response(self, request: web.Request) -> web.StreamResponse:
        recorded = await self._record(request)
        if (denied := self._auth_error(recorded)) is not None:
            return denied
        body = recorded.json
        if (refused := self._check_body(body)) is not None:
            return refused
        scenario = self._next_scenario(body)
        if scenario is None:
            return self._fail_loudly("POST /v1/responses with no scenario queued")
        if scenario.http_errors:
            failure = scenario.http_errors[0]
            failure.times -= 1
            if failure.times <= 0:
                scenario.http_errors.popleft()
            headers = {"x-request-id": f"req_{self._next():06d}"}
            if failure.retry_after is not None:
                headers["retry-after"] = failure.retry_after
            return web.json_response(
                _error_body(failure.message, type_=failure.type, code=failure.code),
                status=failure.status,
                headers=headers,
            )
        if self.scenarios and self.scenarios[0] is scenario:
            self.scenarios.popleft()
        if scenario.raw_blocks is not None:
            return await self._replay(request, scenario)
        if body.get("background") and self.background_ignores_stream:
            return self._background_json(body, scenario)
        return await self._stream(request, body, scenario)

    def _background_json(self, body: dict[str, Any], scenario: Scenario) -> web.Response:
        """A provider that takes `background` but then ignores `stream`: a queued Response as
        JSON; it has finished by the second `GET /responses/{id}`."""
        response_id = f"resp_{self._next():06d}"
        container = self._container_for(body)
        self.response_containers[response_id] = container
        _, _, full_output = self._build(body, scenario, response_id, container)
        queued = self._response(response_id, body, "queued", [])
        self.responses[response_id] = queued
        final = self._response(response_id, body, scenario.terminal, full_output, scenario)
        self._completions[response_id] = (2, final)
        return web.json_response(self._validated(Response, queued))

    # ---- building a turn ------------------------------------------------------------------

    def _container_for(self, body: dict[str, Any]) -> str:
        previous = body.get("previous_response_id")
        container = self.response_containers.get(previous) if previous else None
        if self.provider == "openai" and container and container not in self.expired_containers:
            return container
        return f"cntr_{self._next():06d}"

    def _store_generated(self, name: str, data: bytes, container: str) -> StoredFile:
        stored = StoredFile(self._generated_id(), name, "assistants_output", data, int(time.time()))
        stored.container_id = container
        if self.provider == "openai":
            self.container_files[(container, stored.id)] = stored
        else:
            self.files[stored.id] = stored
        return stored

    def _response(
        self,
        response_id: str,
        body: dict[str, Any],
        status: str,
        output: list[Any],
        scenario: Scenario | None = None,
    ) -> dict[str, Any]:
        usage = None
        if scenario is not None and status in ("completed", "incomplete", "failed"):
            usage = {
                "input_tokens": scenario.input_tokens,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": scenario.output_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": scenario.input_tokens + scenario.output_tokens,
            }
        error = None
        if status == "failed" and scenario is not None:
            error = {"code": scenario.failure[0], "message": scenario.failure[1]}
        incomplete = None
        if status == "incomplete" and scenario is not None:
            incomplete = {"reason": scenario.incomplete_reason}
        return {
            "id": response_id,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "background": bool(body.get("background")),
            "error": error,
            "incomplete_details": incomplete,
            "instructions": body.get("instructions"),
            "max_output_tokens": None,
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "store": True,
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": body.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
        }

    def _build(
        self, body: dict[str, Any], scenario: Scenario, response_id: str, container: str
    ) -> tuple[list[dict[str, Any]], list[Any], list[Any]]:
        """Events (without sequence numbers), the final output as streamed, and the full output
        (with citations even when the stream carries none)."""
        include_outputs = self.provider == "yandex" or "code_interpreter_call.outputs" in (
            body.get("include") or []
        )
        events: list[dict[str, Any]] = []
        streamed_output: list[Any] = []
        full_output: list[Any] = []
        uncited: list[StoredFile] = []
        for index, item in enumerate(scenario.items):
            if isinstance(item, _Code):
                item_id = f"ci_{self._next():06d}"
                added = {
                    "id": item_id,
                    "type": "code_interpreter_call",
                    "status": "in_progress",
                    "code": "",
                    "container_id": container,
                    "outputs": None,
                }
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": added}
                )
                ref = {"output_index": index, "item_id": item_id}
                events.append({"type": "response.code_interpreter_call.in_progress", **ref})
                for delta in _split(item.code, item.chunks):
                    events.append(
                        {"type": "response.code_interpreter_call_code.delta", **ref, "delta": delta}
                    )
                events.append(
                    {"type": "response.code_interpreter_call_code.done", **ref, "code": item.code}
                )
                events.append({"type": "response.code_interpreter_call.interpreting", **ref})
                events.append({"type": "response.code_interpreter_call.completed", **ref})
                outputs: list[dict[str, Any]] = []
                if item.logs is not None:
                    outputs.append({"type": "logs", "logs": item.logs})
                for image in item.images:
                    url = "data:image/png;base64," + base64.b64encode(image).decode()
                    outputs.append({"type": "image", "url": url})
                for name, data in item.saves.items():
                    uncited.append(self._store_generated(name, data, container))
                done = {
                    **added,
                    "status": "completed",
                    "code": item.code,
                    "outputs": outputs if include_outputs else None,
                }
                events.append(
                    {"type": "response.output_item.done", "output_index": index, "item": done}
                )
                streamed_output.append(done)
                # Stored with its outputs: `GET /responses/{id}` shows them if `include` asks.
                full_output.append({**done, "outputs": outputs})
            elif isinstance(item, _Reasoning):
                item_id = f"rs_{self._next():06d}"
                ref = {"output_index": index, "item_id": item_id, "content_index": 0}
                added = {"id": item_id, "type": "reasoning", "summary": [], "status": "in_progress"}
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": added}
                )
                events.append({"type": "response.reasoning_text.delta", **ref, "delta": item.text})
                events.append({"type": "response.reasoning_text.done", **ref, "text": item.text})
                done = {
                    **added,
                    "status": "completed",
                    "content": [{"type": "reasoning_text", "text": item.text}],
                }
                events.append(
                    {"type": "response.output_item.done", "output_index": index, "item": done}
                )
                streamed_output.append(done)
                full_output.append(done)
            else:
                cited = [f for f in uncited if item.cite is None or f.filename in item.cite]
                uncited = [f for f in uncited if f not in cited]
                annotations = [_citation(item.text, f) for f in cited]
                streamed_annotations = annotations if scenario.stream_annotations else []
                item_id = f"msg_{self._next():06d}"
                ref = {"output_index": index, "item_id": item_id, "content_index": 0}
                added = {
                    "id": item_id,
                    "type": "message",
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
                events.append(
                    {"type": "response.output_item.added", "output_index": index, "item": added}
                )
                empty_part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                events.append({"type": "response.content_part.added", **ref, "part": empty_part})
                sent = 0
                pending = list(enumerate(streamed_annotations))
                for delta in _split(item.text, item.chunks):
                    sent += len(delta)
                    events.append(
                        {
                            "type": "response.output_text.delta",
                            **ref,
                            "delta": delta,
                            "logprobs": [],
                        }
                    )
                    while pending and pending[0][1]["end_index"] <= sent:
                        number, annotation = pending.pop(0)
                        events.append(
                            {
                                "type": "response.output_text.annotation.added",
                                **ref,
                                "annotation_index": number,
                                "annotation": annotation,
                            }
                        )
                for number, annotation in pending:
                    events.append(
                        {
                            "type": "response.output_text.annotation.added",
                            **ref,
                            "annotation_index": number,
                            "annotation": annotation,
                        }
                    )
                events.append(
                    {"type": "response.output_text.done", **ref, "text": item.text, "logprobs": []}
                )
                part = {
                    "type": "output_text",
                    "text": item.text,
                    "annotations": streamed_annotations,
                    "logprobs": [],
                }
                events.append({"type": "response.content_part.done", **ref, "part": part})
                done = {**added, "status": "completed", "content": [part]}
                events.append(
                    {"type": "response.output_item.done", "output_index": index, "item": done}
                )
                streamed_output.append(done)
                full_output.append({**done, "content": [{**part, "annotations": annotations}]})
        return events, streamed_output, full_output

    # ---- streaming ------------------------------------------------------------------------

    async def _send(self, response: web.StreamResponse, event: dict[str, Any]) -> None:
        try:
            EVENT_ADAPTER.validate_python(event)
        except ValidationError as error:
            message = f"invalid stream event {event.get('type')!r}: {error}"
            self.errors.append(message)
            raise ProtocolError(message) from None
        await self._write(response, f"event: {event['type']}\ndata: {json.dumps(event)}\n\n")

    async def _write(self, response: web.StreamResponse, text: str) -> None:
        try:
            await response.write(text.encode())
        except (ConnectionError, RuntimeError) as error:
            raise _Disconnected from error

    async def _open_sse(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200,
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"},
        )
        response.enable_chunked_encoding()
        await response.prepare(request)
        return response

    def _note_disconnect(self, response_id: str) -> None:
        self.disconnects.append(response_id)
        self._disconnected.set()

    async def _stream(
        self, request: web.Request, body: dict[str, Any], scenario: Scenario
    ) -> web.StreamResponse:
        response_id = f"resp_{self._next():06d}"
        container = self._container_for(body)
        self.response_containers[response_id] = container
        events, streamed_output, full_output = self._build(body, scenario, response_id, container)
        self.responses[response_id] = self._response(response_id, body, "in_progress", [])
        start = self._response(response_id, body, "in_progress", [])
        final_status = scenario.terminal
        final_event = {
            "completed": "response.completed",
            "failed": "response.failed",
            "incomplete": "response.incomplete",
        }[final_status]
        plan = [
            {"type": "response.created", "response": start},
            {"type": "response.in_progress", "response": start},
            *events,
            {
                "type": final_event,
                "response": self._response(
                    response_id, body, final_status, streamed_output, scenario
                ),
            },
        ]
        stored_final = self._response(response_id, body, final_status, full_output, scenario)

        sse = await self._open_sse(request)
        sequence = 0
        try:
            for position, event in enumerate(plan):
                if scenario.error_after == position:
                    code, message = scenario.error
                    error_event = {"type": "error", "code": code, "message": message, "param": None}
                    await self._send(sse, {**error_event, "sequence_number": sequence})
                    self.responses[response_id] = self._response(
                        response_id, body, "failed", [], scenario
                    )
                    # A real server may keep the connection open: wait for the client to leave.
                    await self._wait(request, seconds=5.0)
                    return sse
                if scenario.cut_after == position:
                    if scenario.cut_stored_status == "completed":
                        self.responses[response_id] = stored_final
                    elif scenario.cut_completes_after is not None:
                        self.responses[response_id] = self._response(
                            response_id, body, scenario.cut_stored_status, []
                        )
                        self._completions[response_id] = (
                            scenario.cut_completes_after,
                            stored_final,
                        )
                    await sse.write_eof()
                    return sse
                if scenario.drop_after == position:
                    if scenario.cut_completes_after is not None:
                        self._completions[response_id] = (
                            scenario.cut_completes_after,
                            stored_final,
                        )
                    if request.transport is not None:
                        request.transport.abort()
                    return sse
                if scenario.stall_after == position:
                    await self._wait(
                        request, gate=scenario.stall_gate, seconds=scenario.stall_seconds
                    )
                if scenario.text_pause and event["type"] == "response.output_text.delta":
                    await self._wait(request, seconds=scenario.text_pause)
                await self._send(sse, {**event, "sequence_number": sequence})
                sequence += 1
                if position == len(plan) - 1:
                    self.responses[response_id] = stored_final
            await sse.write_eof()
        except _Disconnected:
            self._note_disconnect(response_id)
        return sse

    async def _replay(self, request: web.Request, scenario: Scenario) -> web.StreamResponse:
        assert scenario.raw_blocks is not None
        response_id = ""
        for _, event in scenario.raw_blocks:
            try:
                EVENT_ADAPTER.validate_python(event)
            except ValidationError as error:
                return self._fail_loudly(f"invalid replayed event {event.get('type')!r}: {error}")
            response = event.get("response")
            if isinstance(response, dict):
                response_id = response.get("id", response_id)
                if event["type"] == "response.completed":
                    self.responses[response_id] = response
            annotations = [event.get("annotation")] if "annotation" in event else []
            for annotation in annotations:
                if annotation and annotation.get("type") == "container_file_citation":
                    name = annotation["filename"]
                    if name not in scenario.raw_files:
                        continue
                    stored = StoredFile(
                        annotation["file_id"],
                        name,
                        "assistants_output",
                        scenario.raw_files[name],
                        int(time.time()),
                        annotation["container_id"],
                    )
                    if self.provider == "openai":
                        self.container_files[(stored.container_id or "", stored.id)] = stored
                    else:
                        self.files[stored.id] = stored
        sse = await self._open_sse(request)
        try:
            for text, _ in scenario.raw_blocks:
                await self._write(sse, text)
            await sse.write_eof()
        except _Disconnected:
            self._note_disconnect(response_id)
        return sse


def _split(text: str, chunks: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // chunks))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _citation(text: str, stored: StoredFile) -> dict[str, Any]:
    target = f"sandbox:/mnt/data/{stored.filename}"
    position = text.find(target)
    start = end = 0
    if position >= 0:
        start = text.rfind("[", 0, position)
        end = text.find(")", position) + 1
        if start < 0 or end <= 0:
            start, end = position, position + len(target)
    return {
        "type": "container_file_citation",
        "container_id": stored.container_id,
        "file_id": stored.id,
        "filename": stored.filename,
        "start_index": start,
        "end_index": end,
    }


@asynccontextmanager
async def running_responses_fake(provider: str = "openai") -> AsyncIterator[ResponsesFake]:
    """Start the fake on 127.0.0.1 (random port); stop it and `check()` it on exit. When the
    body raised and the fake recorded protocol errors, `ProtocolError` is raised instead."""
    fake = ResponsesFake(provider)
    await fake.start()
    try:
        yield fake
    except Exception as error:
        await fake.stop()
        if fake.errors:  # the root cause is the fake's problem, not what the client saw
            raise ProtocolError("responses fake: " + "; ".join(fake.errors)) from error
        raise
    except BaseException:
        await fake.stop()
        raise
    await fake.stop()
    fake.check()


async def _serve(provider: str) -> None:  # pragma: no cover - manual use
    async with running_responses_fake(provider) as fake:
        fake.default_scenario = Scenario().code("print(1)", logs="1\n").text("One.")
        print(fake.base_url, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":  # pragma: no cover - manual use
    parser = argparse.ArgumentParser(description="Run the Responses API fake (a canned answer).")
    parser.add_argument("--provider", choices=PROVIDERS, default="openai")
    asyncio.run(_serve(parser.parse_args().provider))

"""A loopback fake of a function-calling model: Responses API and Chat Completions, streamed.

The real `AsyncOpenAI` client talks to it over HTTP on 127.0.0.1. A *script* decides each reply
from the whole conversation so far (the fake rebuilds it from `previous_response_id` when the
client is stateful), so a scripted model can read what the code printed and answer with it, as a
real one would. Every streamed event is validated with the SDK's own types
(`ResponseStreamEvent`, `ChatCompletionChunk`) before it is sent, and the requests are checked
the way real servers check them (every `call_id` answered, tool messages after the assistant
message that called them, the `python` tool declared). Problems land in `fake.errors` and are
raised when `running_tool_model()` exits.

    def script(chat: Conversation) -> list[Call | Answer]:
        if not chat.outputs:
            return [Call("import pandas as pd; print(pd.read_csv('sales.csv').price.sum())")]
        return [Answer(f"The total is {chat.outputs[-1].strip()}.")]

    async with running_tool_model(script) as model:
        client = model.client()        # AsyncOpenAI(base_url=model.base_url)
        ...
        model.requests                 # (path, json) of every request

Modes: `keeps_responses=False` refuses `previous_response_id` with a 400 naming the parameter
(as servers that store nothing do). `fail_next(status)` answers the next request with an error.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import openai
from aiohttp import web
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter, ValidationError

EVENT_ADAPTER: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)


@dataclass
class Call:
    """The model calls the `python` tool with this code."""

    code: str
    chunks: int = 3
    name: str = "python"


@dataclass
class Answer:
    text: str
    chunks: int = 3


@dataclass
class Conversation:
    """Everything the model has seen: instructions, messages, calls and their outputs."""

    api: str
    instructions: str
    items: list[dict[str, Any]]
    tool_choice: Any
    request: dict[str, Any]

    @property
    def outputs(self) -> list[str]:
        """Outputs of the tool calls, in order (across the whole conversation)."""
        return [i["output"] for i in self.items if i.get("type") == "function_call_output"]

    @property
    def turn_outputs(self) -> list[str]:
        """Outputs of the calls made since the last user message."""
        outputs: list[str] = []
        for item in self.items:
            if item.get("role") == "user":
                outputs = []
            elif item.get("type") == "function_call_output":
                outputs.append(item["output"])
        return outputs

    @property
    def user_messages(self) -> list[str]:
        return [i["content"] for i in self.items if i.get("role") == "user"]

    @property
    def question(self) -> str:
        return self.user_messages[-1] if self.user_messages else ""


Script = Callable[[Conversation], list[Call | Answer]]


def _split(text: str, chunks: int) -> list[str]:
    if not text:
        return [""]
    size = max(1, -(-len(text) // max(chunks, 1)))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


class ToolModel:
    def __init__(self, script: Script, *, keeps_responses: bool = True) -> None:
        self.script = script
        self.keeps_responses = keeps_responses
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.errors: list[str] = []
        self.conversations: list[Conversation] = []
        self._stored: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._failures: list[int] = []
        self._runner: web.AppRunner | None = None
        self._clients: list[openai.AsyncOpenAI] = []
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application(client_max_size=2**28)
        app.router.add_post("/v1/responses", self._responses)
        app.router.add_post("/v1/chat/completions", self._chat)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}/v1"

    async def stop(self) -> None:
        for client in self._clients:
            await client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def client(self, **kwargs: Any) -> openai.AsyncOpenAI:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("max_retries", 0)
        client = openai.AsyncOpenAI(base_url=self.base_url, **kwargs)
        self._clients.append(client)
        return client

    def fail_next(self, status: int, times: int = 1) -> None:
        self._failures.extend([status] * times)

    # ---- checks --------------------------------------------------------------------------

    def _problem(self, message: str) -> web.Response:
        self.errors.append(message)
        return web.json_response({"error": {"message": message, "type": "fake"}}, status=500)

    def _check_tools(self, body: dict[str, Any], api: str) -> str | None:
        tools = body.get("tools") or []
        names = []
        for tool in tools:
            if tool.get("type") != "function":
                return f"unexpected tool type {tool.get('type')!r}"
            spec = tool if api == "responses" else tool.get("function", {})
            if not isinstance(spec.get("parameters"), dict):
                return "a function tool without parameters"
            names.append(spec.get("name"))
        if names != ["python"]:
            return f"expected exactly the python tool, got {names}"
        return None

    @staticmethod
    def _check_answered(items: list[dict[str, Any]]) -> str | None:
        """Every function call is answered by an output with its call_id before the next user
        message or the end."""
        open_calls: list[str] = []
        for item in items:
            if item.get("type") == "function_call":
                open_calls.append(item["call_id"])
            elif item.get("type") == "function_call_output":
                if item.get("call_id") not in open_calls:
                    return f"an output for an unknown call {item.get('call_id')!r}"
                open_calls.remove(item["call_id"])
            elif item.get("role") == "user" and open_calls:
                return f"calls {open_calls} were not answered before the next message"
        if open_calls:
            return f"calls {open_calls} were not answered"
        return None

    # ---- Responses API ---------------------------------------------------------------------

    def _normalise_input(self, raw: Any) -> list[dict[str, Any]] | str:
        if isinstance(raw, str):
            return [{"role": "user", "content": raw}]
        if not isinstance(raw, list):
            return "input must be a string or a list"
        items = []
        for item in raw:
            if not isinstance(item, dict):
                return "an input item is not an object"
            kind = item.get("type")
            if kind == "function_call_output":
                if not isinstance(item.get("output"), str) or not item.get("call_id"):
                    return "a function_call_output needs call_id and a string output"
                items.append({"type": kind, "call_id": item["call_id"], "output": item["output"]})
            elif kind == "function_call":
                items.append(
                    {
                        "type": kind,
                        "call_id": item["call_id"],
                        "name": item["name"],
                        "arguments": item["arguments"],
                    }
                )
            elif item.get("role") in ("user", "assistant", "system", "developer"):
                items.append({"role": item["role"], "content": _text_of(item.get("content"))})
            else:
                return f"unknown input item {item!r:.200}"
        return items

    async def _responses(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/responses", body))
        if self._failures:
            status = self._failures.pop(0)
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "server_error"}}, status=status
            )
        if not body.get("stream"):
            return self._problem("the local backend must stream")
        problem = self._check_tools(body, "responses")
        if problem:
            return self._problem(problem)
        previous = body.get("previous_response_id")
        history: list[dict[str, Any]] = []
        if previous:
            if not self.keeps_responses:
                return web.json_response(
                    {
                        "error": {
                            "message": "previous_response_id is not supported",
                            "type": "invalid_request_error",
                            "param": "previous_response_id",
                            "code": "unsupported_parameter",
                        }
                    },
                    status=400,
                )
            if previous not in self._stored:
                return web.json_response(
                    {
                        "error": {
                            "message": f"Previous response with id '{previous}' not found.",
                            "type": "invalid_request_error",
                            "param": "previous_response_id",
                            "code": "previous_response_not_found",
                        }
                    },
                    status=400,
                )
            history = list(self._stored[previous])
        items = self._normalise_input(body.get("input"))
        if isinstance(items, str):
            return self._problem(items)
        conversation_items = history + items
        problem = self._check_answered(conversation_items)
        if problem:
            return self._problem(problem)
        chat = Conversation(
            "responses",
            body.get("instructions") or "",
            conversation_items,
            body.get("tool_choice"),
            body,
        )
        self.conversations.append(chat)
        reply = self.script(chat)
        if body.get("tool_choice") == "none" and any(isinstance(r, Call) for r in reply):
            return self._problem("the script called the tool with tool_choice=none")
        return await self._stream_response(request, body, conversation_items, reply)

    def _response_object(
        self, rid: str, body: dict[str, Any], status: str, output: list[Any], usage: Any
    ) -> dict[str, Any]:
        return {
            "id": rid,
            "object": "response",
            "created_at": int(time.time()),
            "status": status,
            "error": None,
            "incomplete_details": None,
            "instructions": body.get("instructions"),
            "model": body["model"],
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": body.get("previous_response_id"),
            "store": body.get("store", True),
            "temperature": 1.0,
            "text": {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": 1.0,
            "truncation": "disabled",
            "usage": usage,
            "metadata": {},
        }

    async def _stream_response(
        self,
        request: web.Request,
        body: dict[str, Any],
        conversation: list[dict[str, Any]],
        reply: list[Call | Answer],
    ) -> web.StreamResponse:
        rid = f"resp_{next(self._ids):06d}"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        seq = itertools.count()

        async def send(event: dict[str, Any]) -> None:
            event["sequence_number"] = next(seq)
            try:
                EVENT_ADAPTER.validate_python(event)
            except ValidationError as error:
                self.errors.append(f"invalid event {event['type']}: {error}")
                raise
            await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())

        started = self._response_object(rid, body, "in_progress", [], None)
        await send({"type": "response.created", "response": started})
        await send({"type": "response.in_progress", "response": started})
        output: list[dict[str, Any]] = []
        produced: list[dict[str, Any]] = []
        for index, part in enumerate(reply):
            if isinstance(part, Call):
                item_id = f"fc_{rid}_{index}"
                call_id = f"call_{rid}_{index}"
                arguments = json.dumps({"code": part.code})
                item = {
                    "type": "function_call",
                    "id": item_id,
                    "call_id": call_id,
                    "name": part.name,
                    "arguments": "",
                    "status": "in_progress",
                }
                await send(
                    {"type": "response.output_item.added", "output_index": index, "item": item}
                )
                for chunk in _split(arguments, part.chunks):
                    await send(
                        {
                            "type": "response.function_call_arguments.delta",
                            "item_id": item_id,
                            "output_index": index,
                            "delta": chunk,
                        }
                    )
                await send(
                    {
                        "type": "response.function_call_arguments.done",
                        "item_id": item_id,
                        "output_index": index,
                        "name": part.name,
                        "arguments": arguments,
                    }
                )
                done = {**item, "arguments": arguments, "status": "completed"}
                await send(
                    {"type": "response.output_item.done", "output_index": index, "item": done}
                )
                output.append(done)
                produced.append(
                    {
                        "type": "function_call",
                        "call_id": call_id,
                        "name": part.name,
                        "arguments": arguments,
                    }
                )
            else:
                item_id = f"msg_{rid}_{index}"
                item = {
                    "type": "message",
                    "id": item_id,
                    "role": "assistant",
                    "status": "in_progress",
                    "content": [],
                }
                await send(
                    {"type": "response.output_item.added", "output_index": index, "item": item}
                )
                empty = {"type": "output_text", "text": "", "annotations": []}
                where = {"item_id": item_id, "output_index": index, "content_index": 0}
                await send({"type": "response.content_part.added", **where, "part": empty})
                for chunk in _split(part.text, part.chunks):
                    await send(
                        {
                            "type": "response.output_text.delta",
                            **where,
                            "delta": chunk,
                            "logprobs": [],
                        }
                    )
                await send(
                    {
                        "type": "response.output_text.done",
                        **where,
                        "text": part.text,
                        "logprobs": [],
                    }
                )
                full = {"type": "output_text", "text": part.text, "annotations": []}
                await send({"type": "response.content_part.done", **where, "part": full})
                done = {**item, "status": "completed", "content": [full]}
                await send(
                    {"type": "response.output_item.done", "output_index": index, "item": done}
                )
                output.append(done)
                produced.append({"role": "assistant", "content": part.text})
        tokens_in = sum(len(json.dumps(i)) for i in conversation) // 4 + 50
        tokens_out = sum(len(json.dumps(i)) for i in produced) // 4 + 1
        usage = {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        }
        final = self._response_object(rid, body, "completed", output, usage)
        await send({"type": "response.completed", "response": final})
        if self.keeps_responses and body.get("store", True):
            self._stored[rid] = conversation + produced
        await response.write_eof()
        return response

    # ---- Chat Completions ------------------------------------------------------------------

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(("/chat/completions", body))
        if self._failures:
            status = self._failures.pop(0)
            return web.json_response(
                {"error": {"message": "scripted failure", "type": "server_error"}}, status=status
            )
        if not body.get("stream"):
            return self._problem("the local backend must stream")
        problem = self._check_tools(body, "chat")
        if problem:
            return self._problem(problem)
        instructions = ""
        items: list[dict[str, Any]] = []
        for message in body.get("messages", []):
            role = message.get("role")
            if role == "system":
                instructions += _text_of(message.get("content"))
            elif role == "user":
                items.append({"role": "user", "content": _text_of(message.get("content"))})
            elif role == "assistant":
                if message.get("content"):
                    items.append({"role": "assistant", "content": message["content"]})
                for call in message.get("tool_calls") or []:
                    if call.get("type") != "function":
                        return self._problem("a tool call of another type")
                    items.append(
                        {
                            "type": "function_call",
                            "call_id": call["id"],
                            "name": call["function"]["name"],
                            "arguments": call["function"]["arguments"],
                        }
                    )
            elif role == "tool":
                items.append(
                    {
                        "type": "function_call_output",
                        "call_id": message.get("tool_call_id"),
                        "output": _text_of(message.get("content")),
                    }
                )
            else:
                return self._problem(f"unknown role {role!r}")
        problem = self._check_answered(items)
        if problem:
            return self._problem(problem)
        chat = Conversation("chat", instructions, items, body.get("tool_choice"), body)
        self.conversations.append(chat)
        reply = self.script(chat)
        if body.get("tool_choice") == "none" and any(isinstance(r, Call) for r in reply):
            return self._problem("the script called the tool with tool_choice=none")
        cid = f"chatcmpl-{next(self._ids):06d}"
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any] | None, finish: str | None = None, usage=None):
            chunk = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body["model"],
                "choices": []
                if delta is None
                else [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if usage is not None:
                chunk["usage"] = usage
            try:
                ChatCompletionChunk.model_validate(chunk)
            except ValidationError as error:
                self.errors.append(f"invalid chunk: {error}")
                raise
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send({"role": "assistant", "content": ""})
        calls = [r for r in reply if isinstance(r, Call)]
        for answer in (r for r in reply if isinstance(r, Answer)):
            for chunk in _split(answer.text, answer.chunks):
                await send({"content": chunk})
        for index, call in enumerate(calls):
            arguments = json.dumps({"code": call.code})
            for number, chunk in enumerate(_split(arguments, call.chunks)):
                part: dict[str, Any] = {"index": index, "function": {"arguments": chunk}}
                if number == 0:
                    part.update(id=f"call_{cid}_{index}", type="function")
                    part["function"]["name"] = call.name
                await send({"tool_calls": [part]})
        await send({}, finish="tool_calls" if calls else "stop")
        if (body.get("stream_options") or {}).get("include_usage"):
            tokens_in = sum(len(json.dumps(i)) for i in items) // 4 + 50
            await send(
                None,
                usage={
                    "prompt_tokens": tokens_in,
                    "completion_tokens": 20,
                    "total_tokens": tokens_in + 20,
                },
            )
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


@asynccontextmanager
async def running_tool_model(
    script: Script, *, keeps_responses: bool = True
) -> AsyncIterator[ToolModel]:
    model = ToolModel(script, keeps_responses=keeps_responses)
    await model.start()
    try:
        yield model
    finally:
        await model.stop()
    if model.errors:
        raise AssertionError("tool model fake: " + "; ".join(model.errors))


__all__ = ["Answer", "Call", "Conversation", "ToolModel", "running_tool_model"]

"""Baseline for the bot's CPU cost: a plain relay of the same Responses stream.

A minimal FastAPI endpoint, `GET /ask?q=...`, that opens a streamed Responses API call with
the same SDK the bot uses (`AsyncOpenAI().responses.create(stream=True)`, Code Interpreter
tool) and relays every event to the browser as server-sent events — what a web demo of the
same analysis does, and nothing more. `benchmarks/bot_load.py` runs it in its own process
against the same Responses fake and compares CPU per analysis side by side.

Needs the `bench` dependency group:  uv sync --group bench
Run alone:  .venv/bin/python benchmarks/sse_relay.py --llm http://127.0.0.1:PORT/v1
(prints its own URL, serves until stdin closes)
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import AsyncIterator

from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from openai import AsyncOpenAI


def create_app(llm_base_url: str, model: str = "gpt-test") -> FastAPI:
    app = FastAPI()
    client = AsyncOpenAI(base_url=llm_base_url, api_key="bench-key", max_retries=0)

    @app.get("/ask")
    async def ask(q: str) -> StreamingResponse:
        async def events() -> AsyncIterator[str]:
            stream = await client.responses.create(
                model=model,
                input=q,
                tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
                stream=True,
            )
            async for event in stream:
                yield f"event: {event.type}\ndata: {event.model_dump_json()}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def serve(llm_base_url: str) -> None:
    import uvicorn

    port = free_port()
    config = uvicorn.Config(
        create_app(llm_base_url), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
        await asyncio.sleep(0.01)
    print(f"http://127.0.0.1:{port}", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()  # until EOF
    server.should_exit = True
    await task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--llm", required=True, help="Responses API base URL (…/v1)")
    asyncio.run(serve(parser.parse_args().llm))


if __name__ == "__main__":
    main()

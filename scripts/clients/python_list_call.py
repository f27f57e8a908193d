"""The official Python MCP SDK's client, in either of its modes, against an
endpoint: lists the tools, calls one, and prints what an application would
see. Exits non-zero when the SDK refuses an answer (e.g. a listing missing a
field its version requires), a call fails, or an expected tool is missing.

- `default`: `mcp.Client`, which negotiates the newest protocol it knows
  (MCP 2026-07-28 in mcp 2.3).
- `lowlevel`: `ClientSession` over `streamable_http_client` (the initialize
  handshake, so a pre-2026 version, as most deployed applications use it).
- `sse`: `ClientSession` over the legacy HTTP+SSE transport (`sse_client`,
  MCP 2024-11-05); URL is the SSE stream's.

Usage: python_list_call.py default|lowlevel|sse URL TOOL ARGS_JSON [EXPECTED_TOOL...]
"""

import asyncio
import json
import sys
from contextlib import asynccontextmanager

from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client


@asynccontextmanager
async def connect(mode, url):
    if mode == "default":
        async with Client(url) as client:
            yield client
        return
    transport = sse_client(url) if mode == "sse" else streamable_http_client(url)
    async with transport as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()
            print("protocol:", init.protocol_version)
            yield session


async def main() -> int:
    mode, url, tool, args, *expected = sys.argv[1:]
    async with connect(mode, url) as client:
        listed = await client.list_tools()
        names = [t.name for t in listed.tools]
        print("tools:", " ".join(sorted(names)))
        missing = [n for n in expected if n not in names]
        if missing:
            print("missing:", missing)
            return 1
        result = await client.call_tool(tool, json.loads(args))
        text = " ".join(getattr(c, "text", "") for c in result.content)
        print(f"{tool}: {text}")
        return 1 if result.is_error else 0


sys.exit(asyncio.run(main()))

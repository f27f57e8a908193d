"""The official Python MCP SDK's low-level client (ClientSession over
streamable_http_client: the initialize handshake, so a pre-2026 protocol
version, as most deployed applications use it) against an endpoint: lists the
tools, calls one, and prints what an application would see. Exits non-zero
when a call fails or an expected tool is missing.
Usage: python_lowlevel.py URL TOOL ARGS_JSON [EXPECTED_TOOL...]
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client


async def main() -> int:
    url, tool, args, *expected = sys.argv[1:]
    async with streamable_http_client(url) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            init = await session.initialize()
            print("protocol:", init.protocol_version)
            listed = await session.list_tools()
            names = [t.name for t in listed.tools]
            print("tools:", " ".join(sorted(names)))
            missing = [n for n in expected if n not in names]
            if missing:
                print("missing:", missing)
                return 1
            result = await session.call_tool(tool, json.loads(args))
            text = " ".join(getattr(c, "text", "") for c in result.content)
            print(f"{tool}: {text}")
            return 1 if result.is_error else 0


sys.exit(asyncio.run(main()))

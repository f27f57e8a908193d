"""The official Python MCP SDK's legacy HTTP+SSE client (MCP 2024-11-05,
`mcp.client.sse.sse_client`) against an endpoint: initializes, lists the
tools, calls one, and prints what an application would see. Exits non-zero
when a step fails or an expected tool is missing.

Usage: python_sse_client.py SSE_URL TOOL ARGS_JSON [EXPECTED_TOOL...]
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client


async def main() -> int:
    url, tool, args, *expected = sys.argv[1:]
    async with sse_client(url) as (read, write):
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

"""The official Python MCP SDK's default client (it negotiates the newest
protocol it knows, MCP 2026-07-28 in mcp 2.3) against an endpoint: lists the
tools, calls one, and prints what an application would see. Exits non-zero
when the SDK refuses an answer (e.g. a listing missing a field its version
requires). Usage: python_default.py URL TOOL ARGS_JSON [EXPECTED_TOOL...]
"""

import asyncio
import json
import sys

from mcp import Client


async def main() -> int:
    url, tool, args, *expected = sys.argv[1:]
    async with Client(url) as client:
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

"""The official Python MCP SDK's low-level client calling a tool the policy
denies, then one it allows, on the same session. Prints one JSON line per
step: the call's result, or the error's class, code and message, as an
application sees it.
Usage: python_denial.py URL TOKEN DENIED_TOOL ALLOWED_TOOL
"""

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


async def call(session, step, name):
    try:
        r = await session.call_tool(name, {"message": "still here"})
        text = r.content[0].text if r.content else None
        print(json.dumps({"step": step, "ok": True, "isError": r.is_error, "text": text}))
    except Exception as e:  # what an application would catch
        code = getattr(getattr(e, "error", None), "code", None)
        print(json.dumps({"step": step, "ok": False, "type": type(e).__name__, "code": code, "message": str(e)}))


async def main() -> int:
    url, token, denied, allowed = sys.argv[1:5]
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(url, http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            init = await session.initialize()
            print(json.dumps({"step": "protocol", "version": init.protocol_version}))
            await call(session, "denied", denied)
            await call(session, "allowed", allowed)
    return 0


sys.exit(asyncio.run(main()))

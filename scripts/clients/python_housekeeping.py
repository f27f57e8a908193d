"""The official Python MCP SDK's low-level client doing protocol housekeeping
through an endpoint with a token: sets the log level, completes a prompt
argument, and tries what the test expects to be refused. Prints one JSON line
per step: {"step": ..., "ok": true, ...} or {"step": ..., "ok": false,
"code": <JSON-RPC error code>, "message": ...}. Exits 0 when the session
survived to the end.
Usage: python_housekeeping.py URL TOKEN
"""

import asyncio
import json
import sys

from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError


async def step(name, call):
    try:
        result = await call
        print(json.dumps({"step": name, "ok": True, "result": result.model_dump(mode="json")}))
    except MCPError as e:
        print(json.dumps({"step": name, "ok": False, "code": e.code, "message": e.error.message}))


async def main() -> int:
    url, token = sys.argv[1:3]
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with http, streamable_http_client(url, http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            await step("set_level", session.set_logging_level("info"))
            allowed = types.PromptReference(type="ref/prompt", name="completable-prompt")
            await step("complete_allowed", session.complete(allowed, {"name": "department", "value": "En"}))
            denied = types.PromptReference(type="ref/prompt", name="args-prompt")
            await step("complete_denied", session.complete(denied, {"name": "city", "value": "x"}))
            await step("subscribe_denied", session.subscribe_resource("demo://resource/static/document/secret.md"))
            # The session is still usable after the refusals.
            await step("ping", session.send_ping())
    return 0


sys.exit(asyncio.run(main()))

"""The official Python MCP SDK's client doing protocol housekeeping through
an endpoint: it connects (mode `auto`: `server/discover`, falling back to the
`initialize` handshake on servers that predate MCP 2026-07-28), then runs each
step given as JSON and prints one JSON line per step with what the
application sees: the result, or the JSON-RPC error the SDK raised.

Usage: python_housekeeping.py URL TOKEN STEP_JSON...
A step is one of
  {"op": "complete_prompt", "name": ..., "argument": ..., "value": ...}
  {"op": "complete_resource", "uri": ..., "argument": ..., "value": ...}
  {"op": "set_level", "level": ...}
  {"op": "subscribe", "uri": ...} / {"op": "unsubscribe", "uri": ...}
  {"op": "list_prompts"}
The first line printed is {"protocol": <the negotiated version>}.
"""

import asyncio
import json
import sys
import warnings

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types import PromptReference, ResourceTemplateReference

# logging/setLevel and resources/subscribe are deprecated as of 2026-07-28;
# servers on earlier versions still use them, so this client does too.
warnings.simplefilter("ignore")


async def run(client: Client, step: dict) -> dict:
    op = step["op"]
    if op == "complete_prompt":
        done = await client.complete(
            PromptReference(type="ref/prompt", name=step["name"]),
            {"name": step["argument"], "value": step["value"]},
        )
        return {"values": done.completion.values}
    if op == "complete_resource":
        done = await client.complete(
            ResourceTemplateReference(type="ref/resource", uri=step["uri"]),
            {"name": step["argument"], "value": step["value"]},
        )
        return {"values": done.completion.values}
    if op == "set_level":
        await client.set_logging_level(step["level"])
        return {}
    if op == "subscribe":
        await client.subscribe_resource(step["uri"])
        return {}
    if op == "unsubscribe":
        await client.unsubscribe_resource(step["uri"])
        return {}
    if op == "list_prompts":
        listed = await client.list_prompts()
        return {"prompts": sorted(p.name for p in listed.prompts)}
    raise ValueError(f"unknown step {op}")


async def main() -> int:
    url, token, *steps = sys.argv[1:]
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=30)
    async with http, Client(streamable_http_client(url, http_client=http)) as client:
        print(json.dumps({"protocol": client.protocol_version}), flush=True)
        for raw in steps:
            step = json.loads(raw)
            try:
                out = {"ok": True, **await run(client, step)}
            except MCPError as e:
                out = {"ok": False, "code": e.error.code, "message": e.error.message}
            except Exception as e:  # what else the SDK raises reaches the application as is
                out = {"ok": False, "exception": type(e).__name__, "message": str(e)}
            print(json.dumps({"step": step, **out}), flush=True)
    return 0


sys.exit(asyncio.run(main()))

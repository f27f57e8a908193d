"""A real MCP server on the official Python SDK (`MCPServer`), serving the
legacy HTTP+SSE transport (MCP 2024-11-05: GET /sse, POST /messages/) with
uvicorn: the remote of `mcp-bridge connect --remote-transport sse` in
bridge/tests/bridge.rs.

Usage: python_sse_server.py PORT
Prints "listening" once it accepts connections.
"""

import sys

import uvicorn
from mcp.server.mcpserver import MCPServer

server = MCPServer("legacy-sse-peer")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers"""
    return a + b


def main() -> None:
    config = uvicorn.Config(
        server.sse_app(), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning"
    )
    uvicorn_server = uvicorn.Server(config)
    original_startup = uvicorn_server.startup

    async def startup(sockets=None):
        await original_startup(sockets)
        print("listening", flush=True)

    uvicorn_server.startup = startup
    uvicorn_server.run()


if __name__ == "__main__":
    main()

"""A real MCP server on the official Python SDK (`MCPServer`), serving the
legacy HTTP+SSE transport (MCP 2024-11-05: GET /sse, POST /messages/) with
uvicorn: the remote of `mcp-bridge connect --remote-transport sse` in
bridge/tests/bridge.rs.

Usage: python_sse_server.py PORT
Prints "listening" once it accepts connections.
"""

import sys

from uvicorn_serve import serve
from mcp.server.mcpserver import MCPServer

server = MCPServer("legacy-sse-peer")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers"""
    return a + b


def main() -> None:
    serve(server.sse_app(), int(sys.argv[1]))


if __name__ == "__main__":
    main()

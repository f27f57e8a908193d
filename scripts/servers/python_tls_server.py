"""A real MCP server on the official Python SDK (`MCPServer`), serving
Streamable HTTP over TLS with uvicorn: the TLS backend of
examples/tls/envoy.yaml in integration/tests/composition.rs.

Usage: python_tls_server.py PORT CERT_PEM KEY_PEM
Prints "listening" once it accepts connections.
"""

import sys

from uvicorn_serve import serve
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

server = MCPServer("tls-peer")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers"""
    return a + b


@server.tool()
def tls_only() -> str:
    """A tool only the TLS server has"""
    return "over TLS"


def main() -> None:
    port, cert, key = sys.argv[1:4]
    app = server.streamable_http_app(
        stateless_http=True,
        json_response=True,
        # Envoy forwards the client's Host; this server only binds loopback.
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    serve(app, int(port), ssl_certfile=cert, ssl_keyfile=key)


if __name__ == "__main__":
    main()

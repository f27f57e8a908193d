#!/usr/bin/env python3
"""A stdio MCP server from a newer protocol than the SDKs know: its tool and
its results (`initialize` included) carry members no SDK's typed model has, and `tools/call` logs a
message with one more member, then echoes the parameters it received. The tool `ask` instead asks
the client to sample (a request with one more member) and answers with the result it got back. The bridge's tests use it to check that nothing
is lost on the way (standard library only; one JSON-RPC message per line).
"""
import json
import sys

TOOL = {
    "name": "probe",
    "description": "echoes the parameters it received",
    "inputSchema": {"type": "object"},
    "annotations": {"readOnlyHint": True, "futureHint": "kept"},
    "futureMember": {"nested": [1, 2, 3]},
}


def say(message):
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request):
    method = request.get("method")
    params = request.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {}, "futureCapability": {"x": 1}},
            "serverInfo": {"name": "future-stdio-server", "version": "0.1.0",
                           "futureInfo": "kept"},
            "futureInit": "kept",
        }
    if method == "tools/list":
        return {"tools": [TOOL], "futureResultField": "kept"}
    if method == "tools/call" and params.get("name") == "ask":
        say({"jsonrpc": "2.0", "id": "ask-1", "method": "sampling/createMessage",
             "params": {"messages": [{"role": "user",
                                      "content": {"type": "text", "text": "hi"}}],
                        "maxTokens": 10, "futureAsk": "kept"}})
        got = wait_for("ask-1")
        return {"content": [{"type": "text",
                             "text": json.dumps(got.get("result"), sort_keys=True)}]}
    if method == "tools/call":
        say({"jsonrpc": "2.0", "method": "notifications/message",
             "params": {"level": "info", "data": "probe called", "futureNote": "kept"}})
        received = {k: v for k, v in params.items() if k != "_meta"}
        return {
            "content": [{"type": "text", "text": json.dumps(received, sort_keys=True)}],
            "futureResultField": "kept",
        }
    if method == "ping":
        return {}
    return None


def messages():
    while True:
        line = sys.stdin.readline()
        if not line:
            return
        line = line.strip()
        if line:
            yield json.loads(line)


def wait_for(id):
    """The answer to this server's own request `id` (other messages meanwhile are not served)."""
    for message in messages():
        if message.get("id") == id and "method" not in message:
            return message
    sys.exit(0)


def main():
    for message in messages():
        if "id" not in message or "method" not in message:
            continue  # notifications and answers: nothing to say
        result = answer(message)
        if result is None:
            reply = {"jsonrpc": "2.0", "id": message["id"],
                     "error": {"code": -32601, "message": "method not found"}}
        else:
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": result}
        say(reply)


if __name__ == "__main__":
    main()

"""Runs an ASGI app with uvicorn on 127.0.0.1 and prints "listening" once it
accepts connections (the test servers' readiness line)."""

import uvicorn


def serve(app, port: int, **options) -> None:
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", **options)
    server = uvicorn.Server(config)
    original_startup = server.startup

    async def startup(sockets=None):
        await original_startup(sockets)
        print("listening", flush=True)

    server.startup = startup
    server.run()

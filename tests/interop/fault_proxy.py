"""Fault-injecting HTTP reverse proxy for the loopback remote-store tests.

Test infrastructure, not a product: it sits between a client under test and a
real server (moto's S3 API server, aiohttp's static file server) and forwards
every request unchanged (method, path, query, headers including Host, so S3
signatures still match, and body). On a seeded fraction of requests it injects
a fault instead:

- ``errorRate``: answers ``500 InternalError`` without asking the upstream;
- ``resetRate``: resets the TCP connection (RST via SO_LINGER 0), half of the
  time before any response byte, half of the time after the headers and part
  of the body;
- ``delayMs``: added latency on every request, before it is forwarded;
- ``slowRate`` / ``slowMs``: sends the headers, then stalls ``slowMs`` before
  the body.

It counts requests, injected errors and resets, response body bytes and the
maximum number of requests in flight at once. A second port serves the
control API (JSON): ``GET /stats``, ``POST /reset-stats``, ``PUT /faults``.

Usage: ``python fault_proxy.py UPSTREAM_URL [FAULTS_JSON]``. Once both ports
listen it prints one JSON line ``{"port": P, "control": C}`` on stdout. It
exits when its stdin closes (its parent went away) or on SIGTERM.
"""

import asyncio
import json
import os
import random
import signal
import socket
import struct
import sys

try:
    from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
except ImportError as e:  # fail loudly: the fixtures never skip
    print(
        f"fault_proxy: missing Python package ({e}); install tests/interop/requirements.txt "
        "into .venv (deno run -A scripts/python_env.ts)",
        file=sys.stderr,
    )
    sys.exit(3)

# Headers that describe one hop, not the message; aiohttp sets its own.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "content-length",
}

FAULT_KEYS = ("errorRate", "resetRate", "delayMs", "slowRate", "slowMs", "seed")

ERROR_BODY = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>InternalError</Code>'
    b"<Message>injected fault</Message></Error>"
)


def check_faults(faults):
    """Validated faults with defaults; raises ValueError naming the bad field."""
    if not isinstance(faults, dict):
        raise ValueError("faults must be a JSON object")
    for key in faults:
        if key not in FAULT_KEYS:
            raise ValueError(f"unknown fault {key!r}")
    out = {key: faults.get(key, 0) for key in FAULT_KEYS}
    for key, value in out.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise ValueError(f"fault {key} must be a number >= 0, got {value!r}")
    for key in ("errorRate", "resetRate", "slowRate"):
        if out[key] > 1:
            raise ValueError(f"fault {key} must be at most 1, got {out[key]!r}")
    if out["errorRate"] + out["resetRate"] > 1:
        raise ValueError("errorRate + resetRate must be at most 1")
    return out


class Proxy:
    def __init__(self, upstream, faults):
        self.upstream = upstream.rstrip("/")
        self.session = None
        self.in_flight = 0
        self.set_faults(faults)
        self.reset_stats()

    def set_faults(self, faults):
        self.faults = check_faults(faults)
        # One generator for the fault draws: the same seed and request order
        # give the same faults.
        self.rng = random.Random(self.faults["seed"])

    def reset_stats(self):
        self.stats = {"requests": 0, "errors": 0, "resets": 0, "maxInFlight": 0, "bytes": 0}

    def draw(self):
        """The fault of the next request: 'error', 'reset-early', 'reset-late' or None, and slow."""
        f = self.faults
        u = self.rng.random()
        kind = None
        if u < f["errorRate"]:
            kind = "error"
        elif u < f["errorRate"] + f["resetRate"]:
            kind = "reset-early" if self.rng.random() < 0.5 else "reset-late"
        slow = self.rng.random() < f["slowRate"]
        return kind, slow

    async def handle(self, request):
        self.stats["requests"] += 1
        self.in_flight += 1
        self.stats["maxInFlight"] = max(self.stats["maxInFlight"], self.in_flight)
        try:
            return await self.forward(request)
        finally:
            self.in_flight -= 1

    async def forward(self, request):
        kind, slow = self.draw()
        body = await request.read()
        if self.faults["delayMs"] > 0:
            await asyncio.sleep(self.faults["delayMs"] / 1000)
        if kind == "error":
            self.stats["errors"] += 1
            return web.Response(status=500, body=ERROR_BODY, content_type="application/xml")
        if kind == "reset-early":
            self.stats["resets"] += 1
            reset(request)
            return web.Response(status=500)  # never sent: the connection is gone
        headers = [(k, v) for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP]
        async with self.session.request(
            request.method,
            self.upstream + request.rel_url.raw_path_qs,
            headers=headers,
            data=body if body else None,
            allow_redirects=False,
        ) as up:
            data = await up.read()
            status = up.status
            out_headers = [(k, v) for k, v in up.headers.items() if k.lower() not in HOP_BY_HOP]
            length = up.headers.get("Content-Length")
        resp = web.StreamResponse(status=status)
        for k, v in out_headers:
            resp.headers.add(k, v)
        # HEAD answers carry the object's length without a body.
        if request.method == "HEAD" and length is not None:
            resp.headers["Content-Length"] = length
        else:
            resp.content_length = len(data)
        await resp.prepare(request)
        if kind == "reset-late":
            self.stats["resets"] += 1
            await resp.write(data[: len(data) // 2])
            self.stats["bytes"] += len(data) // 2
            reset(request)
            return resp
        if slow:
            await asyncio.sleep(self.faults["slowMs"] / 1000)
        if request.method != "HEAD":
            await resp.write(data)
            self.stats["bytes"] += len(data)
        await resp.write_eof()
        return resp


def reset(request):
    """Closes the client connection with a TCP RST (SO_LINGER 0)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def control_app(proxy):
    async def stats(_request):
        return web.json_response(proxy.stats)

    async def reset_stats(_request):
        proxy.reset_stats()
        return web.json_response(proxy.stats)

    async def faults(request):
        try:
            proxy.set_faults(await request.json())
        except ValueError as e:
            return web.json_response({"error": str(e)}, status=400)
        return web.json_response(proxy.faults)

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_post("/reset-stats", reset_stats)
    app.router.add_put("/faults", faults)
    return app


async def serve(app, host="127.0.0.1"):
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


async def wait_for_stdin_eof():
    """Returns once the parent closes our stdin (or dies)."""
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.buffer.read)


async def main():
    upstream = sys.argv[1]
    faults = json.loads(sys.argv[2]) if len(sys.argv) > 2 else {}
    proxy = Proxy(upstream, faults)
    proxy.session = ClientSession(
        connector=TCPConnector(limit=0, force_close=False),
        timeout=ClientTimeout(total=None),
        auto_decompress=False,
        skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
    )
    app = web.Application(client_max_size=1 << 30)
    app.router.add_route("*", "/{tail:.*}", proxy.handle)
    runners = []
    runner, port = await serve(app)
    runners.append(runner)
    runner, control = await serve(control_app(proxy))
    runners.append(runner)
    print(json.dumps({"port": port, "control": control}), flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    stdin_closed = asyncio.ensure_future(wait_for_stdin_eof())
    stop_wait = asyncio.ensure_future(stop.wait())
    await asyncio.wait([stdin_closed, stop_wait], return_when=asyncio.FIRST_COMPLETED)
    for r in runners:
        await r.cleanup()
    await proxy.session.close()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except ValueError as e:
        print(f"fault_proxy: {e}", file=sys.stderr)
        sys.exit(2)
    # The stdin reader thread may still block; leave without joining it.
    sys.stdout.flush()
    os._exit(0)

"""Real servers behind the loopback remote-store fixtures (tests/remote/servers.ts).

- ``s3 BUCKET``: moto's S3 API server (moto[server], ThreadedMotoServer) on
  127.0.0.1 with a free port and BUCKET created.
- ``http ROOT``: aiohttp's static file handler serving the folder ROOT; it
  answers ``Range: bytes=a-b``, ``bytes=a-`` and ``bytes=-n`` with 206 and
  ``Content-Range``, and unsatisfiable ranges with 416.
- ``upload ENDPOINT BUCKET DIR PREFIX``: puts every file under DIR at
  ``PREFIX/<relative path>`` with boto3, then exits.

The servers print one JSON line ``{"port": P}`` once they listen and exit when
their stdin closes (their parent went away) or on SIGTERM. Missing packages
exit with code 3 and a message naming them.
"""

import json
import os
import signal
import sys
import threading

try:
    import boto3
    from aiohttp import web
    from moto.server import ThreadedMotoServer
except ImportError as e:  # fail loudly: the fixtures never skip
    print(
        f"remote_servers: missing Python package ({e}); install tests/interop/requirements.txt "
        "into .venv (deno run -A scripts/python_env.ts)",
        file=sys.stderr,
    )
    sys.exit(3)

# Fake credentials of the loopback bucket: moto accepts any.
CREDENTIALS = {
    "aws_access_key_id": "tessera-test-key",
    "aws_secret_access_key": "tessera-test-secret",
    "region_name": "us-east-1",
}


def client(endpoint):
    return boto3.client("s3", endpoint_url=endpoint, **CREDENTIALS)


def wait_until_stdin_closes_or_sigterm():
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def read_stdin():
        sys.stdin.buffer.read()
        done.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    while not done.wait(0.5):
        pass


def serve_s3(bucket):
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    client(f"http://{host}:{port}").create_bucket(Bucket=bucket)
    print(json.dumps({"port": port}), flush=True)
    wait_until_stdin_closes_or_sigterm()
    server.stop()


def serve_http(root):
    import asyncio

    async def main():
        app = web.Application()
        app.router.add_static("/", root, show_index=False, follow_symlinks=False)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(json.dumps({"port": site._server.sockets[0].getsockname()[1]}), flush=True)
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, read_stdin_to_eof)
        await runner.cleanup()

    asyncio.run(main())


def read_stdin_to_eof():
    # Runs in an executor thread; SIGTERM is handled by the main thread's
    # handler, which ends the process.
    sys.stdin.buffer.read()


def upload(endpoint, bucket, folder, prefix):
    s3 = client(endpoint)
    prefix = prefix.strip("/")
    count = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            key = f"{prefix}/{rel}" if prefix else rel
            with open(path, "rb") as f:
                s3.put_object(Bucket=bucket, Key=key, Body=f.read())
            count += 1
    print(json.dumps({"uploaded": count}), flush=True)


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "s3" and len(sys.argv) == 3:
        serve_s3(sys.argv[2])
    elif cmd == "http" and len(sys.argv) == 3:
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        serve_http(sys.argv[2])
    elif cmd == "upload" and len(sys.argv) == 6:
        upload(*sys.argv[2:])
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.stdout.flush()
    os._exit(0)

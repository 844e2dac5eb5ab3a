"""The recording receiver: one aiohttp server on 127.0.0.1 that both schedulers POST to.

aiohttp's low-level ``web.Server`` (no router, no access log) on uvloop, to keep the
receiver's cost per request small.

Run as its own process (``python receiver.py --port N``). Every request to a path other than
``/_records`` and ``/_reset`` is answered 200 with an empty body and recorded as one line:
the ``Idempotency-Key`` header, the scheduled instant (``Belfry-Scheduled-At``, or
``X-Scheduled-At`` from the APScheduler side) as sent, and the arrival time (Unix seconds,
taken when the handler starts). Parsing is left to the driver so the hot path stays short.

Control routes (for the driver only):

- ``GET /_records?from=N``: the records from index N on, as tab-separated lines
  ``key<TAB>scheduled<TAB>arrival``; the ``X-Total`` header gives the record count.
- ``POST /_reset``: forget every record.
"""

import argparse
import asyncio
import signal
import time

from aiohttp import web

RECORDS: list = []


async def handle(request: web.BaseRequest) -> web.Response:
    """Route a request: the two control paths, else a delivery to record."""
    path = request.path
    if path == "/_records":
        return records(request)
    if path == "/_reset":
        RECORDS.clear()
        return web.Response(text="ok")
    arrival = time.time()
    headers = request.headers
    RECORDS.append(
        (
            headers.get("Idempotency-Key", ""),
            headers.get("Belfry-Scheduled-At") or headers.get("X-Scheduled-At", ""),
            arrival,
        )
    )
    # Read (and drop) any body so the connection can be reused.
    if request.can_read_body:
        await request.read()
    return web.Response()


def records(request: web.BaseRequest) -> web.Response:
    """Return the records from index ``from`` on, one tab-separated line each."""
    start = int(request.query.get("from", "0"))
    body = "".join(f"{k}\t{s}\t{a:.6f}\n" for k, s, a in RECORDS[start:])
    return web.Response(text=body, headers={"X-Total": str(len(RECORDS))})


async def serve(port: int) -> None:
    """Serve on 127.0.0.1:``port`` with aiohttp's low-level server until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    server = web.Server(handle, access_log=None)
    listener = await loop.create_server(server, "127.0.0.1", port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    listener.close()
    await server.shutdown(1)


def main() -> None:
    """Parse ``--port`` and serve, on uvloop when available."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.port))
    except ImportError:
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()

"""Sanic alone: the framework with no job logic, for the enqueue ceiling.

One process, one worker, access log off (mininq's default too), uvloop when
installed (Sanic's default). It parses the JSON body of a POST, as
``POST /jobs`` must, and answers 201 with a small job-shaped JSON body.
"""

from __future__ import annotations

import argparse

from sanic import Sanic
from sanic.response import json

app = Sanic("bench_sanic_alone")
app.config.ACCESS_LOG = False


@app.post("/jobs")
async def create(request):  # type: ignore[no-untyped-def]
    doc = request.json
    return json(
        {"id": "0190c1d2-0000-7000-8000-000000000000", "status": "pending",
         "queue_name": doc.get("queue_name", "default")},
        status=201,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app.run(host="127.0.0.1", port=args.port, single_process=True,
            access_log=False, motd=False)


if __name__ == "__main__":
    main()

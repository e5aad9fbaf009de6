"""The container's health check: ``python healthcheck.py`` exits 0 when this container's
process answers 200 on ``/healthz`` (served on ``METRICS_PORT``: 200 while its event loop
runs), else 1 with one line saying why.

Docker runs it inside the container every interval (the Dockerfile's ``HEALTHCHECK``,
compose's ``healthcheck``). The slim image has no curl; this needs only the standard library,
so a check costs milliseconds, not the bot's second of imports. It asks ``METRICS_HOST``
unless that is a wildcard (``0.0.0.0`` in the image), where the loopback answers; never
through a proxy (``HTTP_PROXY`` set for the bot's own requests must not carry it away).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

TIMEOUT = 3.0
"""Seconds to wait for an answer: under the HEALTHCHECK's ``--timeout``, so a hung process
fails the check with a reason instead of being killed mid-check."""
WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}


def healthz_url(env: Mapping[str, str]) -> str:
    port = env.get("METRICS_PORT", "").strip()
    if not port.isdigit():
        raise ValueError("METRICS_PORT is not set: this process serves no /healthz")
    host = env.get("METRICS_HOST", "").strip()
    host = WILDCARDS.get(host, host)
    return f"http://[{host}]:{port}/healthz" if ":" in host else f"http://{host}:{port}/healthz"


def check(env: Mapping[str, str]) -> str | None:
    """None when healthy, else why not."""
    try:
        url = healthz_url(env)
    except ValueError as exc:
        return str(exc)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:  # refused, timed out, unreachable
        return f"{url}: {exc}"
    return None if status == 200 else f"{url}: HTTP {status}"


def main() -> int:
    problem = check(os.environ)
    if problem is None:
        return 0
    print(problem, file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())

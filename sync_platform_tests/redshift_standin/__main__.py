"""``python -m sync_platform_tests.redshift_standin --port P --postgres-dsn DSN --s3-endpoint-url URL``."""

from __future__ import annotations

import argparse
import signal
import sys
import threading

from sync_platform_tests.redshift_standin.server import RedshiftStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sync_platform_tests.redshift_standin",
        description="A Redshift stand-in on loopback in front of a local PostgreSQL (tests only).",
    )
    parser.add_argument("--port", type=int, default=5439, help="loopback port to listen on (default 5439)")
    parser.add_argument(
        "--postgres-dsn",
        default="host=127.0.0.1 port=5432 user=postgres",
        help="the PostgreSQL behind the stand-in (libpq DSN or URL; host, port and user are used)",
    )
    parser.add_argument("--s3-endpoint-url", required=True, help="S3 server COPY reads from (e.g. a moto server)")
    args = parser.parse_args(argv)
    try:
        standin = RedshiftStandin(postgres_dsn=args.postgres_dsn, s3_endpoint_url=args.s3_endpoint_url, port=args.port)
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    standin.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"listening on {standin.host}:{standin.port}", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())

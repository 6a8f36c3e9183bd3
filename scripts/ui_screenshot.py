"""Screenshot the Dagster UI's asset graph with headless Chromium, to see the UI working in a real browser.

    python scripts/ui_screenshot.py                                  # starts its own webserver on ./config
    python scripts/ui_screenshot.py --config-dir /path/to/config --output graph.png
    python scripts/ui_screenshot.py --url http://127.0.0.1:3000      # a webserver that is already running

Needs Chromium (``apt-get install -y chromium``). Starting its own webserver, it uses a temporary
``DAGSTER_HOME`` unless one is given, and stops the webserver afterwards. Only loopback is contacted.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = "install Chromium first: apt-get install -y chromium"


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit(f"no Chromium found ({', '.join(BROWSERS)}); {INSTALL_HINT}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@contextmanager
def webserver(config_dir: str | None, dagster_home: str | None, timeout: float = 90) -> Iterator[str]:
    """A ``dagster-webserver -m sync_platform.definitions`` on a free loopback port; yields its URL."""
    port = _free_port()
    env = dict(os.environ)
    if config_dir:
        env["SYNC_PLATFORM_CONFIG_DIR"] = str(Path(config_dir).resolve())
    home = dagster_home or tempfile.mkdtemp(prefix="sync-platform-ui-")
    env["DAGSTER_HOME"] = home
    command = [sys.executable, "-m", "dagster_webserver", "-h", "127.0.0.1", "-p", str(port)]
    command += ["-m", "sync_platform.definitions"]
    process = subprocess.Popen(command, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while not _ready(url):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"dagster-webserver did not start (exit code {process.poll()})")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)


def dismiss_welcome(base_url: str) -> None:
    """Mark the UI's one-time "join the community" dialog as seen (what its Skip button does)."""
    body = json.dumps({"query": "mutation { setNuxSeen }"}).encode()
    request = urllib.request.Request(f"{base_url}/graphql", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30):
        pass


def screenshot(url: str, output: Path, *, wait_ms: int = 20_000, size: str = "1600,1000") -> Path:
    """Load ``url`` in headless Chromium, let the page's scripts run for ``wait_ms``, save a PNG."""
    output = output.resolve()
    output.parent.mkdir(parents=True, exist_ok=True)
    output.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="sync-platform-chromium-") as profile:
        command = [
            find_browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={profile}",
            f"--virtual-time-budget={wait_ms}",
            f"--screenshot={output}",
            f"--window-size={size}",
            url,
        ]
        subprocess.run(command, check=True, capture_output=True, timeout=wait_ms / 1000 + 120)
    if not output.exists() or output.stat().st_size == 0:
        raise SystemExit(f"Chromium wrote no screenshot to {output}")
    return output


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running webserver (default: start one)")
    parser.add_argument("--config-dir", help="configuration directory (default: $SYNC_PLATFORM_CONFIG_DIR or ./config)")
    parser.add_argument("--dagster-home", help="DAGSTER_HOME for the webserver started here (default: a temporary one)")
    parser.add_argument("--page", default="/asset-groups", help="UI path to capture (default: the asset graph)")
    parser.add_argument("--output", default="ui-asset-graph.png", help="PNG to write")
    parser.add_argument("--wait-ms", type=int, default=20_000, help="time the page's scripts get before the shot")
    args = parser.parse_args(argv)
    find_browser()
    if args.url:
        dismiss_welcome(args.url.rstrip("/"))
        path = screenshot(args.url.rstrip("/") + args.page, Path(args.output), wait_ms=args.wait_ms)
    else:
        with webserver(args.config_dir, args.dagster_home) as url:
            dismiss_welcome(url)
            path = screenshot(url + args.page, Path(args.output), wait_ms=args.wait_ms)
    print(path)


if __name__ == "__main__":
    main()

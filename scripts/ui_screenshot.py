"""Screenshot the Dagster UI with headless Chromium: your instance as the UI shows it, in a real browser.

    python scripts/ui_screenshot.py              # your instance ($DAGSTER_HOME, else ~/.sync_platform/dagster)
    python scripts/ui_screenshot.py --demo       # run `sync-platform demo` into it first
    python scripts/ui_screenshot.py --page /runs --output runs.png
    python scripts/ui_screenshot.py --url http://127.0.0.1:3000      # a webserver that is already running

Needs Chromium (``apt-get install -y chromium``). It starts ``dagster-webserver`` on a free loopback port
over the same instance the CLI uses (so the graph shows your runs and materializations), takes the
shot, then stops the webserver and its code server and removes Chromium's temporary profile: nothing
is left running or behind. Only loopback is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
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


def instance_home(dagster_home: str | None) -> str:
    """The instance to picture: the one given, else the CLI's own (``$DAGSTER_HOME``, else the default)."""
    if dagster_home:
        os.environ["DAGSTER_HOME"] = str(Path(dagster_home).expanduser().resolve())
    from sync_platform.orchestration.instance import ensure_dagster_home

    return str(ensure_dagster_home())


def run_demo(config_dir: str | None, home: str) -> None:
    """``sync-platform demo`` into ``home``, so the picture has runs and materializations to show."""
    command = [sys.executable, "-m", "sync_platform.cli.main"]
    command += ["--config-dir", str(Path(config_dir).resolve())] if config_dir else []
    subprocess.run([*command, "demo"], check=True, env={**os.environ, "DAGSTER_HOME": home})


@contextmanager
def webserver(config_dir: str | None, home: str, timeout: float = 120) -> Iterator[str]:
    """A ``dagster-webserver -m sync_platform.definitions`` over ``home`` on a free loopback port; yields its URL.

    It runs in its own process group, which is stopped (webserver and code server) on the way out.
    """
    port = _free_port()
    env = dict(os.environ)
    if config_dir:
        env["SYNC_PLATFORM_CONFIG_DIR"] = str(Path(config_dir).resolve())
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
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the webserver's process group (its code server too), SIGKILL what is left after 20 s."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=20)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # a code server that outlived its webserver
    process.wait(timeout=5)


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
    parser.add_argument(
        "--dagster-home", help="the instance to picture (default: $DAGSTER_HOME, else ~/.sync_platform/dagster)"
    )
    parser.add_argument("--demo", action="store_true", help="run `sync-platform demo` into the instance first")
    parser.add_argument("--page", default="/asset-groups", help="UI path to capture (default: the asset graph)")
    parser.add_argument("--output", default="ui-asset-graph.png", help="PNG to write")
    parser.add_argument("--wait-ms", type=int, default=20_000, help="time the page's scripts get before the shot")
    args = parser.parse_args(argv)
    find_browser()
    if args.url:
        dismiss_welcome(args.url.rstrip("/"))
        path = screenshot(args.url.rstrip("/") + args.page, Path(args.output), wait_ms=args.wait_ms)
    else:
        home = instance_home(args.dagster_home)
        if args.demo:
            run_demo(args.config_dir, home)
        with webserver(args.config_dir, home) as url:
            dismiss_welcome(url)
            path = screenshot(url + args.page, Path(args.output), wait_ms=args.wait_ms)
    print(path)


if __name__ == "__main__":
    main()

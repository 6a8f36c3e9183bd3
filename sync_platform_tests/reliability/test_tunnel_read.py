"""Regression: a sync whose source is behind the SSH bastion reads its rows at all.

connectorx's ``arrow_stream`` holds the GIL while it connects and reads, so the in-process SSH
forwarder (sshtunnel/paramiko, Python threads) could never relay its bytes: every extract through
a tunnel hung for 30 s and failed with "timed out waiting for connection". The reader now detects
a listener of its own process and reads such pages with ``return_type="arrow"`` (GIL released).
"""

from __future__ import annotations

from sync_platform_tests.engine.harness import Harness
from sync_platform_tests.reliability.support import APPEND_COLUMNS, KEYED_COLUMNS, assert_exact, make_append, make_keyed


def test_sync_through_ssh_tunnel(mysql_db, pg_db, make_config_dir, sshd, fault_report) -> None:
    h = Harness(make_config_dir(tunnel="source"), mysql_db, pg_db)
    make_keyed(h, "tun_keyed", 300)
    make_append(h, "tun_append", 300)
    before = len(sshd.forwards())
    h.sync("tun_keyed", batch_max_rows=100)
    h.sync("tun_append", batch_max_rows=100)
    keyed = assert_exact(h, "tun_keyed", KEYED_COLUMNS, key="id")
    append = assert_exact(h, "tun_append", APPEND_COLUMNS)
    assert len(sshd.forwards()) > before, "the reads went through the bastion"
    fault_report(
        "Source behind an SSH bastion (no fault: the baseline for the tunnel faults)",
        f"both tables synced through the tunnel, target == source ({keyed} and {append} rows); before the fix "
        "in engine/extract.py every read hung 30 s and failed: 'timed out waiting for connection'",
    )

"""A sync of one table in its own process, so that tests can SIGKILL it or break a server under it.

``python -m sync_platform_tests.reliability.child CONFIG_DIR PIPELINE SCHEMA.TABLE STATE_FILE [BATCH_MAX_ROWS]``

The watermark lives in ``STATE_FILE`` (JSON), standing in for the orchestrator's metadata: it is
read before the run and written only after the sync returned, as Dagster does. Exit 0 and a JSON
summary on stdout on success; on failure exit 1 with ``ERROR <type>: <message>`` on stderr.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

from sync_platform.configuration import load_project, table_spec
from sync_platform.connections.registry import ConnectionRegistry
from sync_platform.engine.faults import checkpoint
from sync_platform.engine.sync import RunOptions, sync_table
from sync_platform.engine.watermark import Watermark


def main(argv: list[str]) -> int:
    config_dir, pipeline, table, state_file = argv[:4]
    batch_max_rows = int(argv[4]) if len(argv) > 4 else RunOptions().batch_max_rows
    state = Path(state_file)
    previous = Watermark.from_dict(json.loads(state.read_text())) if state.exists() else Watermark()
    try:
        project = load_project(config_dir, env={})
        spec = table_spec(project, pipeline, table)
        with ConnectionRegistry(project.connections, project.config_dir) as registry:
            result = sync_table(registry, spec, previous, RunOptions(batch_max_rows=batch_max_rows))
    except Exception as exc:  # the message is what an operator would see
        print(f"ERROR {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("SYNC_PLATFORM_CHILD_TRACEBACK"):
            traceback.print_exc()
        return 1
    assert result.extract is not None and result.load is not None
    checkpoint("sync.after_load")  # committed in the warehouse; the watermark is not stored yet
    state.write_text(json.dumps(result.extract.watermark.to_dict()))
    print(json.dumps({"extracted": result.extract.rows, "loaded": result.load.rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

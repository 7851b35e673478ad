"""SIGTERM right after start-up still ends in a clean exit (Sanic's manager
used to spin forever when the signal came before its workers reported ready)."""

from __future__ import annotations

import signal


def test_sigterm_right_after_start_exits_cleanly(make_server):
    for attempt in range(8):
        server = make_server()
        code = server.stop(sig=signal.SIGTERM, timeout=15)
        assert code == 0, f"attempt {attempt}: exit code {code}\n{server.log_tail()}"

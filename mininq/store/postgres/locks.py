"""The order in which statements take rows that other transactions also write.

Every statement of this backend that writes more than one of these takes
them in this order: a job's row, the node's destination rows, its queue's
row, then the job_counts, history and counters rows (each table's rows in
key order). A claim locks
its queue rows before the jobs, but skips jobs locked by others instead of
waiting for them. Two transactions can then never hold one of these rows
each while waiting for the other's, which is a deadlock the server breaks
only after a second.

The CTEs of one statement that write other tables run in no order that
PostgreSQL promises (today, the last one first); a CTE filtered by
`after(name)` runs only once the CTE `name` has run to its end, because the
filter is a one-time condition evaluated before its first row.
"""

from __future__ import annotations


def after(cte: str) -> str:
    """A condition that is always true and runs the RETURNING CTE `cte` first."""
    return f"(SELECT count(*) FROM {cte}) >= 0"

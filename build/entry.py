"""Entry point of the frozen executable (PyInstaller runs this file).

`freeze_support()` must come before anything else: Sanic starts its HTTP
worker and the engine with the multiprocessing *spawn* method, which in a
frozen app re-executes this very binary with `--multiprocessing-fork`
arguments. Without it the children would parse those as mininq's own
arguments and exit, and Sanic would report "worker process failed".
"""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()

    from mininq.cli import main

    raise SystemExit(main())

"""`python -m mininq` runs the command line."""

import multiprocessing

if __name__ == "__main__":
    multiprocessing.freeze_support()
    from mininq.cli import main

    main()

"""PyInstaller runtime hook: make the bundled tzdata.zip importable.

The spec ships the tzdata package as one zip (see tzdata_zip() in
mininq.spec); zoneinfo imports `tzdata.zoneinfo...` when the machine has no
system time-zone database, and zipimport plus importlib.resources serve it.
"""

import os
import sys

sys.path.append(os.path.join(sys._MEIPASS, "tzdata.zip"))

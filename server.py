#!/usr/bin/env python3
"""tempdl's entry point: `python server.py [serve|issue|stats|revoke|db upgrade|prune] ...`.

Everything lives in the `tempdl` package; this file only hands the command line over.
"""

import sys

from tempdl.cli.main import main

if __name__ == "__main__":
    sys.exit(main())

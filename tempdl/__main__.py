"""`python -m tempdl`: the same command line as `python server.py` and `tempdl`."""

import sys

from tempdl.cli.main import main

sys.exit(main())

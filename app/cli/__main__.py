"""`python -m app.cli`: the `draftloop` command without the console script (worker processes
started by `serve --workers N` run this, app/supervisor.py)."""

import sys

from app.cli import main

sys.exit(main())

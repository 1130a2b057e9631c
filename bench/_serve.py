"""`draftloop serve` without the CLI's argument parser, for bench/load.py.

While this bench was written, the CLI's parse_args (then app/cli.py, now app/cli/__init__.py) read
``args.approve`` for every sub-command (only ``run`` defines it), so ``draftloop serve`` exited
with AttributeError. That is fixed now; bench/load.py uses the real ``draftloop serve`` whenever
its parser works and falls back to this shim only otherwise: the same ``serve_command``
(settings from env, uvicorn, lifespan), only the argument parsing differs.
"""

from __future__ import annotations

import argparse
import sys

from app.cli.serve import serve_command

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="bench/_serve.py")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    args.command = "serve"
    sys.exit(serve_command(args))

"""`make bench` runs this file; the benchmark itself is the package todo_bench beside it.

See bench/todo_bench/__init__.py for what a run does, and `bench/run.py --help` for options.
"""

import sys

from todo_bench.__main__ import entry

if __name__ == "__main__":
    sys.exit(entry())

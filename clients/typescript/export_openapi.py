"""Write the app's OpenAPI document as JSON, without starting a server.

Usage: python export_openapi.py [OUTPUT]   (default: openapi.json beside this script)

The document must not depend on where or how the app is configured, so the settings are
fixed here: no `.env` file, a SQLite file in a temporary directory (the engine is built but
never connects, so the file is never created).
"""

import json
import sys
import tempfile
from pathlib import Path

from todo_api.app import create_app
from todo_api.settings import Settings

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "openapi.json"


def render() -> str:
    with tempfile.TemporaryDirectory() as scratch:
        database_url = f"sqlite:///{Path(scratch) / 'unused.sqlite3'}"
        app = create_app(Settings(_env_file=None, database_url=database_url, cors_origins=[]))
        return json.dumps(app.openapi(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) > 2:
        print(__doc__, file=sys.stderr)
        return 2
    output = Path(argv[1]) if len(argv) == 2 else DEFAULT_OUTPUT
    output.write_text(render(), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

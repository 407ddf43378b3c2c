"""voicefake in the browser: `python app.py` (or `make demo`), then open http://127.0.0.1:7860.

The page lives in the package (voicefake/app/); this file is the short entry point, the same as
`voicefake app [--host HOST] [--port PORT] [--share]`.
"""

import sys

from voicefake.cli import main

if __name__ == "__main__":
    sys.exit(main(["app", *sys.argv[1:]]))

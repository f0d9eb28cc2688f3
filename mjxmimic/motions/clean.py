"""Old name of `python -m mjxmimic.tools.clean` (kept for existing commands; never imported by the runtime)."""
import sys

from mjxmimic.tools.clean import main

if __name__ == "__main__":
    sys.exit(main())

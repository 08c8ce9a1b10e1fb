"""`python -m mem0sdk ...` is the `mem0` command."""

import sys

from mem0sdk.cli import main

sys.exit(main())

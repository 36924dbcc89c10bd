"""`python -m anomstream` is the `anomstream` command."""

import sys

from anomstream.stream.cli import main

sys.exit(main())

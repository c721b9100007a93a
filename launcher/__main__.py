"""``python -m launcher``: the batchgraph command."""

import sys

from launcher.cli import main

sys.exit(main())

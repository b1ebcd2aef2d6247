"""``python -m e3hier.plan``: the command line (``e3hier.plan.cli``)."""

import sys

from e3hier.plan.cli import main

sys.exit(main())

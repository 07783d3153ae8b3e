"""``python -m deploy.cli``: the ``mlgate`` command."""

import sys

from deploy.cli.main import main

sys.exit(main())

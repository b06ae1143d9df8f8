"""``python -m agent``: the daemon (same as ``station-agent``)."""

import sys

from agent.cli.daemon import main

sys.exit(main())

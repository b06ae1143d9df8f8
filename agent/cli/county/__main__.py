"""``countyctl``: the county technician's tool (see ``scripts/countyctl --help``)."""

import sys

from agent.cli.county.cli import main

sys.exit(main())

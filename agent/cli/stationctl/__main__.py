import sys

from agent.cli.stationctl import main

sys.exit(main())

import sys

from agent.stationctl import main

sys.exit(main())

"""`python -m srl_agent.cli` (what accelerate launch and torchrun run) is `srl-agent`."""

import sys

from . import main

sys.exit(main())

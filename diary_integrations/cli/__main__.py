"""`python -m diary_integrations.cli ...`: the `diary` command, for a venv whose scripts are not on PATH."""

import sys

from .command import main

sys.exit(main())

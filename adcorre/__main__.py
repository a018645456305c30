"""`python -m adcorre ...`: the same as the `adcorre` command."""

import sys

from adcorre.cli.main import main

sys.exit(main())

"""`python -m unlearnable ...` (and `torchrun -m unlearnable ...`): the command line."""

import sys

from .cli import main

sys.exit(main())

"""``python -m lightwork``: the same as the ``lightwork`` command."""

import sys

from ._cli import main

sys.exit(main())

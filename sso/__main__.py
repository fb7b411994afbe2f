"""``python -m sso``: the same as the ``sso`` command."""

import sys

from sso.cli import main

sys.exit(main())

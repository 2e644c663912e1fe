"""Entry point of ``python -m cove.runner``; kept tiny so that start-up imports only what it must."""

import sys

from cove.runner._main import main

sys.exit(main())

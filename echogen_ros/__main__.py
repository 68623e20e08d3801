"""`python -m echogen_ros` is `echogen`."""

import sys

from echogen_ros.cli import main

sys.exit(main())

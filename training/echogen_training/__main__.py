import sys

from echogen_training.cli import main

sys.exit(main())

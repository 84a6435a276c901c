import sys

from biaskit.cli import main

sys.exit(main())

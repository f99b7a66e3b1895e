import sys

from trialsim.cli import main

sys.exit(main())

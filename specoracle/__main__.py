import sys

from specoracle.cli import main

sys.exit(main())

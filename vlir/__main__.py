import sys

from vlir.cli import main

sys.exit(main())

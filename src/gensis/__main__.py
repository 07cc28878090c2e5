import sys

from gensis.cli import main

sys.exit(main())

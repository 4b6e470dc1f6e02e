import sys

from hptune.cli import main

sys.exit(main())

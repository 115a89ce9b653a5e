import sys

from hako.runtime.cli import main

sys.exit(main())

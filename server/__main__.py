import sys

from movielinks.server.cli import main

sys.exit(main())

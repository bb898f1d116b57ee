import sys

from movielinks.client.cli import main

sys.exit(main())

import sys

from .citations import main

sys.exit(main())

import sys
import exactcompress.engine.analyze as a
a.BAB_SECOND_ROUND_SHARE = 1.0
from exactcompress.cli import main
sys.argv = ["exactcompress"] + sys.argv[1:]
main()

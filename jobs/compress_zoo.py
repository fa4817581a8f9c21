"""Ray job entry point of the zoo job: the same as ``exactcompress zoo run`` (same flags, same exit codes).

For ``ray job submit`` and KubeRay, with this folder shipped as the job's working directory::

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/compress_zoo.py --address auto zoo.yaml

The work is ``exactcompress.distributed.zoo_job``; this script only hands its arguments to the command line.
"""

import sys

from exactcompress.cli import main

if __name__ == "__main__":
    sys.argv = ["exactcompress", "zoo", "run", *sys.argv[1:]]
    main()

"""Ray job entry point of a hyperparameter study: the same as ``exactcompress study run`` (same flags, same
exit codes).

For ``ray job submit`` and KubeRay, with this folder shipped as the job's working directory::

    ray job submit --address http://HEAD:8265 --working-dir . -- python jobs/study.py --address auto study.yaml

The work is ``exactcompress.distributed.study_job``; this script only hands its arguments to the command line.
"""

import sys

from exactcompress.cli import main

if __name__ == "__main__":
    sys.argv = ["exactcompress", "study", "run", *sys.argv[1:]]
    main()

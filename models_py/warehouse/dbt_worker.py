"""A dbt process started before the job needs it (run as a script, by models_py.warehouse.dbt).

It imports dbt, 1.4-2 s of one core, while the job is still ingesting or dbt's previous call is running, then
waits for its one command on stdin: a JSON line with the arguments and the environment. It runs that command as
the `dbt` executable would (the same click entry point, output and exit codes). End of input without a command
means the job ended without needing it.
"""

import json
import os
import sys

from dbt.cli.main import cli


def main() -> None:
    line = sys.stdin.readline()
    if not line.strip():
        return
    request = json.loads(line)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    sys.argv = ["dbt", *request["args"]]
    sys.exit(cli())


if __name__ == "__main__":
    main()

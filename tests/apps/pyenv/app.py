"""An endpoint whose image is an environment that already exists on the worker (made by the test)."""

import os
import sys

from cove import Image, endpoint

ENV = os.environ.get("COVE_TEST_PYENV", "/nonexistent-test-env")


@endpoint(image=Image.from_python_env(ENV), cpu=0.25, memory=256)
def which_env() -> dict[str, object]:
    import pyenv_marker  # only the test's environment has it

    site = os.path.dirname(pyenv_marker.__file__)
    try:
        with open(os.path.join(site, "written-from-inside"), "w") as fh:
            fh.write("x")
        writable = True
    except OSError:
        writable = False
    return {"prefix": sys.prefix, "marker": pyenv_marker.VALUE, "writable": writable}

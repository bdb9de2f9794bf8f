"""Check galaxy-importer's output (tests/galaxy.sh): it must end with "Importer processing completed successfully",
print no line with ERROR in it (the importer logs a failed import, a lint timeout or a linter error that way), and no
WARNING line that tests/galaxy-importer-accepted.txt does not accept.

Usage: python tests/galaxy_importer_check.py IMPORTER_OUTPUT [ACCEPTED_FILE]; exit status 0 when it passes.
"""

from __future__ import annotations

import os
import re
import sys

DONE = "Importer processing completed successfully"


def accepted_patterns(path):
    patterns = []
    with open(path) as handle:
        for line in handle:
            line = line.rstrip("\n")
            if line.strip() and not line.lstrip().startswith("#"):
                patterns.append(re.compile(line))
    return patterns


def problems(output, accepted):
    """The importer's lines that fail the check, each with why; an empty list when it passes."""
    found = []
    lines = [line.rstrip() for line in output.splitlines()]
    for line in lines:
        if any(p.search(line) for p in accepted):
            continue
        if "ERROR" in line:
            found.append("error: " + line)
        elif line.startswith("WARNING") or " WARNING " in line or line.startswith("WARN"):
            found.append("warning not accepted: " + line)
    if DONE not in lines:
        found.append("the importer did not print %r" % DONE)
    return found


def main(argv):
    if len(argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    accepted_file = argv[2] if len(argv) > 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                               "galaxy-importer-accepted.txt")
    with open(argv[1]) as handle:
        output = handle.read()
    found = problems(output, accepted_patterns(accepted_file))
    for line in found:
        print(line)
    if found:
        print("galaxy-importer: FAILED (%d problem(s))" % len(found))
        return 1
    print("galaxy-importer: passed (no error, no warning that is not accepted)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

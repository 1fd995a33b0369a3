"""Write ``tests/durations.json`` (seconds per test file, all phases) from a run's JUnit XML.

    .venv/bin/python -m pytest tests -n 2 --dist loadfile --junitxml=run.xml
    .venv/bin/python tests/durations.py run.xml

``tests/conftest.py`` hands the files to the xdist workers longest first by these times (see
``pytest_collection_modifyitems`` there). A file missing from the table (a new one) counts as 0 s
and runs after the timed ones, so refresh the table after adding a long test.
"""
import json
import os.path as osp
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict

TESTS = osp.dirname(osp.abspath(__file__))
REPO = osp.dirname(TESTS)
TABLE = osp.join(TESTS, 'durations.json')


def file_of(classname: str) -> str:
    """``tests.tools.test_x`` or ``tests.tools.test_x.TestCase`` -> ``tests/tools/test_x.py``."""
    parts = classname.split('.')
    for end in range(len(parts), 0, -1):
        path = '/'.join(parts[:end]) + '.py'
        if osp.isfile(osp.join(REPO, path)):
            return path
    raise ValueError(f'no test file for the JUnit class name {classname!r}')


def seconds_per_file(junit_xml: str) -> dict:
    totals = defaultdict(float)
    for case in ET.parse(junit_xml).getroot().iter('testcase'):
        totals[file_of(case.get('classname'))] += float(case.get('time', 0))
    return {path: round(sec, 1) for path, sec in sorted(totals.items(), key=lambda kv: -kv[1])}


def main(argv):
    if len(argv) != 1:
        sys.exit(f'usage: python {osp.relpath(__file__, REPO)} RUN.xml')
    table = seconds_per_file(argv[0])
    with open(TABLE, 'w') as f:
        json.dump(table, f, indent=1)
        f.write('\n')
    print(f'{TABLE}: {len(table)} files, {sum(table.values()) / 60:.1f} min in all')


if __name__ == '__main__':
    main(sys.argv[1:])

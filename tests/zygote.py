"""A pre-imported parent for the tools the tests run (``tests/conftest.py::run_python``).

Every ``tools/*.py`` run in the suite would otherwise pay for importing torch, mmengine, mmpretrain,
mmseg, mmdet and this package again (the suite runs over a hundred tools). This process imports them
once, computes nothing (so no thread pool exists to be broken by ``fork``), and forks one child per
request; the child runs the tool's file as ``__main__`` with the request's argv, working directory,
environment and output files, as ``python tools/x.py ...`` would, minus the imports.

Minus the imports is also what such a child cannot test: the package is already imported, its
registries filled and its shims applied, so a tool or config that fails to import it would still
work here. The runs whose claim is about a new process (the stock toolboxes' tools, one smoke run
of each of our tools) start a new interpreter instead (``run_python(..., fresh=True)``).

Protocol (one JSON object per line): request ``{"argv": [script, *args], "cwd", "env", "stdout",
"stderr"}`` on stdin (``stderr`` null: into ``stdout``); replies ``{"pid": n}`` once forked and
``{"rc": n}`` when the child has exited.
"""
import json
import os
import sys


def _child(req):
    os.setpgid(0, 0)  # its own group: a timeout kills the tool and whatever it started
    os.chdir(req['cwd'])
    os.environ.clear()
    os.environ.update(req['env'])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = os.open(req['stdout'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    err = out if req['stderr'] is None else os.open(
        req['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(out, 1)
    os.dup2(err, 2)
    script = os.path.abspath(req['argv'][0])
    sys.argv = list(req['argv'])
    sys.path[0] = os.path.dirname(script)
    import runpy
    import traceback
    code = 0
    try:
        runpy.run_path(script, run_name='__main__')
    except SystemExit as e:
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: B902 -- a tool's crash is its exit status, as in a real run
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def main():
    # what every tool imports anyway; nothing is computed (fork-safe)
    import mmdet.models  # noqa: F401
    import mmengine.runner  # noqa: F401
    import mmpretrain.models  # noqa: F401
    import mmseg.models  # noqa: F401
    import torch  # noqa: F401

    import visionllama_mm  # noqa: F401
    requests = sys.stdin
    replies = sys.stdout
    for line in requests:
        req = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _child(req)
        replies.write(json.dumps({'pid': pid}) + '\n')
        replies.flush()
        _, status = os.waitpid(pid, 0)
        rc = os.waitstatus_to_exitcode(status)
        replies.write(json.dumps({'rc': rc}) + '\n')
        replies.flush()


if __name__ == '__main__':
    main()

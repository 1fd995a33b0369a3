# Sourced by the shell tools: the interpreter is $PYTHON, else the repo's .venv, else python.
_REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$_REPO/.venv/bin/python" ]; then PYTHON="$_REPO/.venv/bin/python"; else PYTHON=python; fi
fi
export PYTHONPATH="$_REPO:${PYTHONPATH:-}"

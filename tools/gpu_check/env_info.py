"""What the GPU check runs on: the interpreter, torch / CUDA, the card, and where each package of
the stack is imported from.

    python tools/gpu_check/env_info.py [--check]

``--check`` (after ``run.sh`` has installed the wheel bundle) also imports the stack and fails,
naming the module and the error, if one of the modules every check needs does not import; modules
that need mmcv's compiled ops are reported, not required. It then lists every requirement of an
installed distribution that the visible packages do not satisfy (a warning: the bundle is
installed with ``--no-deps``, from a closure computed against a model of the machine).
"""
import argparse
import importlib
import importlib.metadata as md
import importlib.util
import platform
import sys
import traceback

# imported by every check
REQUIRED = ['torch', 'timm', 'mmengine', 'mmcv', 'mmpretrain', 'mmpretrain.models', 'transformers',
            'open_clip', 'diffusers', 'torch_fidelity', 'torchdiffeq', 'cv2', 'matplotlib',
            'visionllama_mm']
# the dense (detection, segmentation) configs: they import mmcv.ops
WITH_OPS = ['mmcv.ops', 'mmseg', 'mmseg.models', 'mmdet', 'mmdet.models']


def try_import(name: str):
    try:
        module = importlib.import_module(name)
    except Exception as err:  # noqa: BLE001  (reported, not raised)
        last = str(err).strip().splitlines()[-1] if str(err).strip() else ''
        return None, f'{type(err).__name__}: {last}'
    return module, None


def unsatisfied() -> list:
    """``'dist: requirement (found ...)'`` for requirements the visible packages miss."""
    from packaging.requirements import Requirement
    problems, seen = [], set()
    for dist in md.distributions():
        name = dist.metadata['Name']
        if not name or name.lower() in seen:
            continue
        seen.add(name.lower())  # the first on sys.path is the one imported
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker and not req.marker.evaluate({'extra': ''}):
                continue
            try:
                found = md.version(req.name)
            except md.PackageNotFoundError:
                problems.append(f'{name}: {req} (not installed)')
                continue
            if req.specifier and not req.specifier.contains(found, prereleases=True):
                problems.append(f'{name}: {req} (found {found})')
    return sorted(problems)


def main():
    parser = argparse.ArgumentParser(description='report the GPU check environment')
    parser.add_argument('--check', action='store_true', help='import the stack; fail if broken')
    args = parser.parse_args()
    import torch
    print(f'python {platform.python_version()} ({sys.executable})')
    card = 'no CUDA device'
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability(0)
        card = f'{torch.cuda.get_device_name(0)} (sm_{major}{minor})'
    print(f'torch {torch.__version__}, CUDA {torch.version.cuda}, {card}')
    print(f'mmcv compiled ops: {"present" if importlib.util.find_spec("mmcv._ext") else "absent"}')
    if not args.check:
        return 0
    failed = []
    for name in REQUIRED + WITH_OPS:
        module, err = try_import(name)
        where = getattr(module, '__file__', '') or ''
        version = getattr(module, '__version__', '')
        print(f'  {"ok " if module else "-- "} {name} {version} {where if module else err}')
        if module is None and name in REQUIRED:
            failed.append(f'{name}: {err}')
    problems = unsatisfied()
    print(f'{len(problems)} requirement(s) of installed distributions not satisfied'
          + (':' if problems else ''))
    for p in problems:
        print(f'  {p}')
    if failed:
        print('env_info: these modules do not import: ' + '; '.join(failed))
        return 1
    return 0


if __name__ == '__main__':
    try:
        sys.exit(main())
    except Exception:
        traceback.print_exc()
        sys.exit(1)

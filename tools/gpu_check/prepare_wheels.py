"""Download, on a machine with the package registry, every wheel the GPU check machine lacks.

    python tools/gpu_check/prepare_wheels.py [--dest tools/gpu_check/wheels] [--limit-mib 64]
        [--dry-run] [--print-requirements]

The GPU check machine (``tools/gpu_check/run.sh``) has Python 3.12, torch 2.11 (CUDA 13), timm,
transformers 5.x, torchdiffeq, torchmetrics, safetensors and onnx, and no network. This script
puts the rest of the stack for ``cp312`` / ``manylinux_2_28_x86_64``, one version of each package,
into ``--dest`` and fails if that folder exceeds ``--limit-mib``:

1. the machine is modelled by resolving its packages (:data:`MACHINE`) with pip's resolver for
   that interpreter and platform (``pip install --dry-run --report``, newest versions, no download);
2. our requirements (:data:`OURS`, with the pins of ``requirements/*.txt``, plus the install
   requirements of the mmcv source distribution) are resolved the same way, constrained to the
   machine's versions of every package they do not name themselves (``-c``), so shared
   dependencies are taken from the machine;
3. every package of (2) that the machine lacks, or has in another version, is downloaded with
   ``pip download --no-deps --only-binary=:all:`` (a pure-python package published only as a
   source archive is built into a ``none-any`` wheel here); torch, torchvision, triton and the
   CUDA libraries are never bundled.

mmcv 2.1.0 is published as source only: the bundle carries its source archive (compiled with its
CUDA ops on the GPU machine) and a pure-python wheel built here from it without ops
(``MMCV_WITH_OPS=0``, distribution name ``mmcv-lite``), which ``run.sh`` installs.
``opencv-python``, which mmcv and mmengine require, is replaced by ``opencv-python-headless``
4.10.0.84 (the same ``cv2`` without GUI libraries, the smallest release built against numpy 2).

The wheels as published come to about 93 MiB, most of it opencv (47.5 MiB). They are carried as
one ``bundle.tar.xz``: each wheel re-zipped without compression (the same member files, which pip
installs as the original) and the whole compressed with xz, which packs the raw contents far
tighter than the wheels' own deflate. ``bundle.txt`` beside it lists every file (name, version,
file name, size as published).

``--dry-run`` resolves and prints the plan without downloading; ``--print-requirements`` prints
the top-level requirements and the machine model without contacting the registry.
"""
import argparse
import glob
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PYTHON_VERSION = '3.12'
PLATFORM = 'manylinux_2_28_x86_64'

# What the GPU check machine has installed (its torch is a CUDA 13 build).
MACHINE = ['torch==2.11.*', 'timm', 'transformers>=5', 'torchdiffeq', 'torchmetrics',
           'safetensors', 'onnx']

# Top-level requirements of the GPU check: (name, requirements file the pin is read from or
# None for an unpinned requirement that no file pins).
OURS = [
    ('mmengine', 'runtime.txt'),
    ('mmpretrain', 'runtime.txt'),
    ('mmsegmentation', 'runtime.txt'),
    ('mmdet', 'runtime.txt'),
    ('ftfy', 'runtime.txt'),  # mmseg imports it at start-up without declaring it
    ('regex', 'runtime.txt'),
    ('open_clip_torch', 'runtime.txt'),
    ('diffusers', 'runtime.txt'),
    ('torch-fidelity', 'runtime.txt'),
    ('setuptools', 'runtime.txt'),  # pkg_resources (mmengine's pkg:: configs, mmcv's setup.py)
    ('webdataset', 'runtime.txt'),  # the image-text shards (imported with the datasets)
    ('braceexpand', 'runtime.txt'),
    ('transformers', 'tests.txt'),  # 5.x breaks `import mmpretrain.models`
    ('tokenizers', 'tests.txt'),
    ('huggingface_hub', 'tests.txt'),
    ('ninja', 'build.txt'),  # parallel compilation of mmcv's CUDA ops on the GPU machine
]
MMCV = 'mmcv'
NEVER = re.compile(r'^(torch|torchvision|torchaudio|triton|nvidia-.*|cuda-.*)$')
# opencv-python (required by mmcv and mmengine) -> the same cv2 without GUI libraries, at the
# smallest release built against numpy 2 (47.5 MiB; 5.1.0.95 is 60.8 MiB)
SUBSTITUTE = {'opencv-python': ('opencv-python-headless', '4.10.0.84')}


def canonical(name: str) -> str:
    return re.sub(r'[-_.]+', '-', name).lower()


def read_pin(filename: str, name: str) -> str:
    """The requirement line of ``name`` in ``requirements/<filename>`` (e.g.
    ``transformers==4.46.3``), comments stripped."""
    path = osp.join(ROOT, 'requirements', filename)
    with open(path) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            match = re.match(r'^([A-Za-z0-9_.\-]+)\s*(.*)$', line)
            if match and canonical(match.group(1)) == canonical(name):
                return f'{match.group(1)}{match.group(2).replace(" ", "")}'
    raise SystemExit(f'prepare_wheels: {name} is not in {path}; the GPU bundle takes its pins from '
                     'requirements/*.txt')


def top_level() -> list:
    """Our top-level requirement strings, pinned as in ``requirements/*.txt``."""
    return [read_pin(f, name) for name, f in OURS]


def pip(*args, capture=False):
    cmd = [sys.executable, '-m', 'pip', '--disable-pip-version-check', *args]
    proc = subprocess.run(cmd, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit(f'prepare_wheels: `{" ".join(cmd)}` failed ({proc.returncode}):\n'
                         f'{proc.stdout[-3000:]}{proc.stderr[-3000:]}')
    return proc.stdout if capture else None


# pip takes the platform tags literally: a manylinux_2_28 machine also runs the wheels of every
# older manylinux (e.g. manylinux2014 = manylinux_2_17), so each is named
PLATFORMS = ([f'manylinux_2_{minor}_x86_64' for minor in range(28, 4, -1)]
             + ['manylinux2014_x86_64', 'manylinux2010_x86_64', 'manylinux1_x86_64'])
TARGET = ['--python-version', PYTHON_VERSION, *(a for p in PLATFORMS for a in ('--platform', p)),
          '--only-binary=:all:', '--implementation', 'cp']


def resolve(requirements, tmp, tag, constraints=()) -> dict:
    """``{canonical name: (name, version)}`` pip's resolver picks for ``requirements`` on the GPU
    machine's interpreter and platform (metadata only, nothing installed)."""
    report = osp.join(tmp, f'{tag}.json')
    args = ['install', '--dry-run', '--ignore-installed', '--quiet', '--report', report,
            '--target', osp.join(tmp, 'target'), *TARGET]
    if constraints:
        cfile = osp.join(tmp, f'{tag}-constraints.txt')
        with open(cfile, 'w') as f:
            f.write('\n'.join(constraints) + '\n')
        args += ['-c', cfile]
    pip(*args, *requirements)
    with open(report) as f:
        items = json.load(f)['install']
    return {canonical(i['metadata']['name']): (i['metadata']['name'], i['metadata']['version'])
            for i in items}


def mmcv_sdist(dest: str, version: str) -> str:
    pip('download', '--quiet', '--no-deps', '--no-binary', ':all:', '--no-build-isolation',
        '-d', dest, f'{MMCV}=={version}')
    found = glob.glob(osp.join(dest, f'{MMCV}-{version}.tar.gz'))
    if not found:
        raise SystemExit(f'prepare_wheels: no {MMCV}-{version}.tar.gz was downloaded into {dest}')
    return found[0]


def mmcv_requirements(sdist: str) -> list:
    """The install requirements of the mmcv source archive (its ``requirements/runtime.txt``)."""
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith('requirements/runtime.txt'))
        text = tar.extractfile(member).read().decode()
    reqs = [line.split('#', 1)[0].strip() for line in text.splitlines()]
    return [r for r in reqs if r and 'platform_system' not in r]


def build_opsless_mmcv(sdist: str, dest: str, tmp: str) -> str:
    """mmcv's pure-python wheel (``MMCV_WITH_OPS=0``) from the source archive."""
    src = osp.join(tmp, 'mmcv-src')
    with tarfile.open(sdist) as tar:
        tar.extractall(src)
    (folder, ) = glob.glob(osp.join(src, 'mmcv-*'))
    env = dict(os.environ, MMCV_WITH_OPS='0')
    out = osp.join(tmp, 'mmcv-wheel')
    proc = subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps',
                           '--no-build-isolation', '--no-cache-dir', '-w', out, folder],
                          env=env, text=True, capture_output=True)
    if proc.returncode != 0:
        raise SystemExit('prepare_wheels: building mmcv without ops failed:\n'
                         + proc.stderr[-3000:])
    (wheel, ) = glob.glob(osp.join(out, '*.whl'))
    if not wheel.endswith('-none-any.whl'):
        raise SystemExit(f'prepare_wheels: the ops-less mmcv wheel is not pure python: {wheel}')
    shutil.copy(wheel, dest)
    return osp.join(dest, osp.basename(wheel))


def download(name: str, version: str, dest: str, tmp: str) -> str:
    """The wheel of ``name==version`` for the GPU machine; a pure-python sdist-only package is
    built into a wheel here."""
    before = set(os.listdir(dest))
    proc = subprocess.run([sys.executable, '-m', 'pip', '--disable-pip-version-check', 'download',
                           '--quiet', '--no-deps', *TARGET, '-d', dest, f'{name}=={version}'],
                          text=True, capture_output=True)
    if proc.returncode != 0:
        out = osp.join(tmp, f'build-{canonical(name)}')
        pip('wheel', '--quiet', '--no-deps', '--no-binary', name, '-w', out, f'{name}=={version}')
        wheels = glob.glob(osp.join(out, '*.whl'))
        if len(wheels) != 1 or not wheels[0].endswith('-none-any.whl'):
            raise SystemExit(f'prepare_wheels: {name}=={version} has no wheel for cp312 / '
                             f'{PLATFORM} and does not build into a pure-python wheel: {wheels}')
        shutil.copy(wheels[0], dest)
    new = sorted(set(os.listdir(dest)) - before)
    if len(new) != 1:
        raise SystemExit(f'prepare_wheels: expected one new file for {name}=={version}, got {new}')
    return osp.join(dest, new[0])


def plan(tmp: str, mmcv_reqs: list) -> tuple:
    """(machine versions, bundle ``[(name, version)]``)."""
    machine = resolve(MACHINE, tmp, 'machine')
    ours_req = top_level() + mmcv_reqs
    named = {canonical(re.match(r'[A-Za-z0-9_.\-]+', r).group(0)) for r in ours_req}
    constraints = [f'{n}=={v}' for key, (n, v) in machine.items() if key not in named]
    ours = resolve(ours_req, tmp, 'ours', constraints)
    bundle = []
    for key, (name, version) in sorted(ours.items()):
        if NEVER.match(key):
            if key in machine and machine[key][1] == version:
                continue
            raise SystemExit(f'prepare_wheels: the requirements would need {name}=={version}, '
                             f'but the GPU machine has {machine.get(key, ("", "nothing"))[1]} and '
                             'torch and CUDA libraries are never bundled')
        if key == MMCV:
            continue
        if key in machine and machine[key][1] == version:
            continue
        bundle.append(SUBSTITUTE.get(key, (name, version)))
    return machine, bundle


def pack(files, dest: str, tmp: str) -> str:
    """``dest/bundle.tar.xz``: the wheels re-zipped without compression (the same files, so pip
    installs them as the originals) and the other files, in one xz-compressed tar. xz over the
    raw contents is about 40% smaller than the deflated wheels."""
    stage = osp.join(tmp, 'pack')
    os.makedirs(stage)
    for path in files:
        if path.endswith('.whl'):
            with zipfile.ZipFile(path) as src, zipfile.ZipFile(
                    osp.join(stage, osp.basename(path)), 'w', zipfile.ZIP_STORED) as out:
                for info in src.infolist():
                    out.writestr(info, src.read(info), compress_type=zipfile.ZIP_STORED)
        else:
            shutil.copy(path, stage)
    archive = osp.join(dest, 'bundle.tar.xz')
    names = sorted(os.listdir(stage))
    if shutil.which('xz'):
        with open(archive, 'wb') as f:
            tar = subprocess.Popen(['tar', '-C', stage, '-cf', '-', *names], stdout=subprocess.PIPE)
            subprocess.run(['xz', '-T0', '-6', '-c'], stdin=tar.stdout, stdout=f, check=True)
            if tar.wait() != 0:
                raise SystemExit('prepare_wheels: tar failed')
    else:
        with tarfile.open(archive, 'w:xz', preset=6) as tar:
            for name in names:
                tar.add(osp.join(stage, name), arcname=name)
    return archive


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--dest', default=osp.join(ROOT, 'tools', 'gpu_check', 'wheels'))
    parser.add_argument('--limit-mib', type=float, default=64.0)
    parser.add_argument('--dry-run', action='store_true',
                        help='resolve and print the plan; download only the mmcv source archive '
                        '(to read its requirements) into a temporary folder')
    parser.add_argument('--print-requirements', action='store_true',
                        help='print the top-level requirements and the machine model, offline')
    args = parser.parse_args()

    if args.print_requirements:
        print('machine: ' + ' '.join(MACHINE))
        print('ours: ' + ' '.join(top_level() + [read_pin('runtime.txt', MMCV)]))
        return

    start = time.time()
    mmcv_version = read_pin('runtime.txt', MMCV).split('==', 1)[1]
    if not args.dry_run:
        if osp.isdir(args.dest) and os.listdir(args.dest):
            raise SystemExit(f'prepare_wheels: {args.dest} is not empty; remove it first (one '
                             'version of each package goes into the bundle)')
        os.makedirs(args.dest, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wheels = osp.join(tmp, 'wheels')
        os.makedirs(wheels)
        sdist = mmcv_sdist(wheels, mmcv_version)
        mmcv_reqs = mmcv_requirements(sdist)
        machine, bundle = plan(tmp, mmcv_reqs)
        print(f'GPU machine model ({" ".join(MACHINE)}, cp{PYTHON_VERSION.replace(".", "")} '
              f'{PLATFORM}): {len(machine)} packages')
        print(f'mmcv {mmcv_version} (source + ops-less wheel), requires: {", ".join(mmcv_reqs)}')
        print(f'bundle: {len(bundle)} wheels')
        for name, version in bundle:
            have = machine.get(canonical(name))
            print(f'  {name}=={version}' + (f'  (machine has {have[1]})' if have else ''))
        if args.dry_run:
            print(f'dry run: nothing downloaded ({time.time() - start:.1f} s)')
            return
        rows = []
        for name, version in bundle:
            path = download(name, version, wheels, tmp)
            rows.append((name, version, path))
        rows.append((MMCV, mmcv_version, build_opsless_mmcv(sdist, wheels, tmp)))
        rows.append((MMCV, mmcv_version, sdist))
        wheel_bytes = sum(osp.getsize(r[2]) for r in rows)
        archive = pack([r[2] for r in rows], args.dest, tmp)
        listing = osp.join(args.dest, 'bundle.txt')
        with open(listing, 'w') as f:
            f.write(f'# GPU check bundle for cp{PYTHON_VERSION.replace(".", "")} {PLATFORM}: '
                    f'{len(rows)} files ({wheel_bytes / 2**20:.2f} MiB as published) in '
                    f'bundle.tar.xz; machine model: {" ".join(MACHINE)}\n')
            for name, version, path in rows:
                f.write(f'{name} {version} {osp.basename(path)} {osp.getsize(path)}\n')
        for name, version, path in sorted(rows, key=lambda r: -osp.getsize(r[2])):
            print(f'{osp.getsize(path) / 2**20:8.2f} MiB  {osp.basename(path)}')
    total = osp.getsize(archive) + osp.getsize(listing)
    print(f'{len(rows)} files, {wheel_bytes / 2**20:.2f} MiB as published; carried: '
          f'{total / 2**20:.2f} MiB in {args.dest} ({time.time() - start:.0f} s)')
    if total > args.limit_mib * 2**20:
        raise SystemExit(f'prepare_wheels: the bundle in {args.dest} is {total / 2**20:.2f} MiB, '
                         f'over the {args.limit_mib:g} MiB limit')


if __name__ == '__main__':
    main()

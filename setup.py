"""visionllama_mm: VisionLLaMA, ViTamin, ConvNeXt V2 and LVM for the OpenMMLab stack."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_requirements(name):
    """Requirement lines of ``requirements/<name>.txt`` (comments and blanks dropped)."""
    lines = []
    with open(os.path.join(HERE, 'requirements', f'{name}.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                lines.append(line)
    return lines


def read_version():
    with open(os.path.join(HERE, 'visionllama_mm', 'version.py')) as f:
        return re.search(r"__version__ = '([^']+)'", f.read()).group(1)


setup(
    name='visionllama_mm',
    version=read_version(),
    description='VisionLLaMA, ViTamin, ConvNeXt V2 and LVM as a plugin for mmpretrain, mmseg and mmdet',
    long_description=open(os.path.join(HERE, 'README.md')).read(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.10',
    install_requires=read_requirements('torch') + read_requirements('runtime'),
    extras_require={
        'tests': read_requirements('tests'),
        'optional': read_requirements('optional'),
    },
    license='Apache-2.0',
    zip_safe=False,
)

"""Every argument of every tool under ``tools/`` is checked at start-up: a bad value exits with
argparse's one line (``<tool>: error: argument <name>: <what is allowed>, got <value>``) before a
config is read or a model is built.

The parsers are imported and called in-process (milliseconds per case); one subprocess per kind
of entry point proves the wiring (a Python tool, the shell launchers)."""
import importlib.util
import os.path as osp
import subprocess
import sys

import pytest

from ..conftest import REPO, run_python

CFG = osp.join(REPO, 'configs', 'quickstart', 'visionllama-tiny-p4_1xb64-20e_digits.py')
DIT = osp.join(REPO, 'configs', 'dit_llama', 'dit_llama-xl-p2_8xb32-400k_in1k-256px.py')
LVM = osp.join(REPO, 'configs', 'lvm', 'lvm_llama-mini_1xb16-400it_digits-counting.py')
_TOOLS = {}


def tool(path):
    """The tool's module, imported once (its ``main`` does not run)."""
    if path not in _TOOLS:
        name = 'cli_' + osp.splitext(osp.basename(path))[0]
        spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'tools', path))
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _TOOLS[path] = module
    return _TOOLS[path]


@pytest.fixture
def files(tmp_path):
    """A checkpoint-like file, an image, a plain file and an empty folder."""
    from PIL import Image
    (tmp_path / 'ck.pth').write_bytes(b'0')
    (tmp_path / 'notes.txt').write_text('x')
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'frames').mkdir()
    for i in (2, 0, 1):
        Image.new('RGB', (16, 16)).save(tmp_path / 'frames' / f'f{i}.png')
    return tmp_path


def refused(parse, argv, capsys):
    with pytest.raises(SystemExit) as exc:
        parse(argv)
    assert exc.value.code == 2
    return capsys.readouterr().err


# (tool, argv with {t} for the tmp folder, expected message parts)
CASES = [
    # train.py
    ('train.py', ['nope.py'], ["argument config: no such file: 'nope.py'"]),
    ('train.py', ['{t}/empty'], ["argument config: '{t}/empty' is a folder, not a file"]),
    ('train.py', ['{t}/notes.txt'], ["argument config: '{t}/notes.txt' is not a config file: "
                                     'expected one of .py, .json, .yaml, .yml']),
    ('train.py', [CFG, '--work-dir', '{t}/notes.txt'],
     ["argument --work-dir: '{t}/notes.txt' is a file, not a folder"]),
    ('train.py', [CFG, '--work-dir', '{t}/notes.txt/run'],
     ["argument --work-dir: cannot write the folder '{t}/notes.txt/run': '{t}/notes.txt' is a "
      'file, not a folder']),
    ('train.py', [CFG, '--resume', '{t}/missing.pth'],
     ["argument --resume: no such file: '{t}/missing.pth'"]),
    ('train.py', [CFG, '--launcher', 'torchrun'],
     ["argument --launcher: invalid choice: 'torchrun' (choose from 'none', 'pytorch', 'slurm', "
      "'mpi')"]),
    ('train.py', [CFG, '--local-rank', '-1'],
     ["argument --local_rank/--local-rank: must be an integer >= 0, got '-1'"]),
    # test.py
    ('test.py', [CFG, '{t}/missing.pth'], ["argument checkpoint: no such file: '{t}/missing.pth'"]),
    ('test.py', [CFG, '{t}/ck.pth', '--out', '{t}/preds.json'],
     ["argument --out: '{t}/preds.json': the predictions are dumped as a pickle; the file name "
      'must end with .pkl or .pickle']),
    ('test.py', [CFG, '{t}/ck.pth', '--out', '{t}/empty'],
     ["argument --out: '{t}/empty' is a folder; give a file name"]),
    ('test.py', [CFG, '{t}/ck.pth', '--show', '--interval', '0'],
     ["argument --interval: must be an integer >= 1, got '0'"]),
    ('test.py', [CFG, '{t}/ck.pth', '--interval', '5'],
     ['argument --interval: 5 has no effect without --show or --show-dir (it sets how often '
      'predictions are drawn)']),
    ('test.py', [CFG, '{t}/ck.pth', '--show', '--wait-time', '-1'],
     ["argument --wait-time: must be a number >= 0, got '-1'"]),
    ('test.py', [CFG, '{t}/ck.pth', '--wait-time', '3'],
     ['argument --wait-time: 3 has no effect without --show (it is the display time of the '
      'window)']),
    ('test.py', [CFG, '{t}/ck.pth', '--show-dir', '{t}/notes.txt'],
     ["argument --show-dir: '{t}/notes.txt' is a file, not a folder"]),
    # get_flops.py
    ('analysis_tools/get_flops.py', [CFG, '--shape', '0'],
     ["argument --shape: must be an integer >= 1, got '0'"]),
    ('analysis_tools/get_flops.py', [CFG, '--shape', '224', '224', '3'],
     ['argument --shape: one int (square) or H W, got 3 values [224, 224, 3]']),
    ('analysis_tools/get_flops.py', [CFG, '--batch-size', 'two'],
     ["argument --batch-size: must be an integer >= 1, got 'two'"]),
    # benchmark.py
    ('analysis_tools/benchmark.py', [CFG, '--batch-size', '0'],
     ["argument --batch-size: must be an integer >= 1, got '0'"]),
    ('analysis_tools/benchmark.py', [CFG, '--iters', '0'],
     ["argument --iters: must be an integer >= 1, got '0'"]),
    ('analysis_tools/benchmark.py', [CFG, '--repeats', '-2'],
     ["argument --repeats: must be an integer >= 1, got '-2'"]),
    ('analysis_tools/benchmark.py', [CFG, '--warmup', '-1'],
     ["argument --warmup: must be an integer >= 0, got '-1'"]),
    ('analysis_tools/benchmark.py', [CFG, '--gen-new', '0'],
     ["argument --gen-new: must be an integer >= 1, got '0'"]),
    ('analysis_tools/benchmark.py', [CFG, '--device', 'gpu'],
     ["argument --device: 'gpu' is not a torch device (e.g. cpu, cuda, cuda:0)"]),
    ('analysis_tools/benchmark.py', [CFG, '--reference-file', '{t}/models.py',
                                     '--reference-model', 'm'],
     ["argument --reference-file: no such file: '{t}/models.py'"]),
    ('analysis_tools/benchmark.py', [CFG, '--reference-model', 'DiT_LLaMA'],
     ['--reference-file and --reference-model go together: the file defines the factories, '
      '--reference-model names the ones to measure']),
    ('analysis_tools/benchmark.py', [CFG, '--variant', 'a', 'model.x=1', '--variant', 'a',
                                     'model.x=2'],
     ['--variant a: the name is given twice; each variant needs its own name (it labels a row '
      'of the table)']),
    ('analysis_tools/benchmark.py', [CFG, '--timm', 'vit_smal_patch16_224'],
     ["argument --timm: 'vit_smal_patch16_224' is not a timm model name; did you mean "
      'vit_small_patch16_224, ']),
    ('analysis_tools/benchmark.py', [CFG, '--precisions', 'int8'],
     ["argument --precisions: invalid choice: 'int8' (choose from 'fp32', 'bf16', 'fp16')"]),
    # check_recipe.py
    ('analysis_tools/check_recipe.py', ['--markdown', '--verbose'],
     ['--verbose and --markdown exclude each other: --markdown prints the README tables, '
      '--verbose the field-by-field check']),
    # sample.py
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--cfg-scale', '0.5'],
     ["argument --cfg-scale: must be a number >= 1, got '0.5'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--cfg-scale', 'nan'],
     ["argument --cfg-scale: must be a finite number >= 1, got 'nan'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--steps', '1'],
     ["argument --steps: must be an integer >= 2, got '1'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--per-class', '0'],
     ["argument --per-class: must be an integer >= 1, got '0'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--nrow', '0'],
     ["argument --nrow: must be an integer >= 1, got '0'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', 'cat'],
     ["argument --classes: must be an integer, got 'cat'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--seed', '-1'],
     ["argument --seed: must be an integer in [0, 4294967295], got '-1'"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--out', '{t}/grid.txt'],
     ["argument --out: '{t}/grid.txt': the suffix must name an image format, one of .png, "
      '.jpg, .jpeg, .bmp, .webp, .tif, .tiff']),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--out', '{t}/empty'],
     ["argument --out: '{t}/empty' is a folder; give a file name"]),
    ('generation/sample.py', [DIT, '{t}/ck.pth', '--classes', '1', '--out',
                              '{t}/notes.txt/grid.png'],
     ["argument --out: cannot write the file '{t}/notes.txt/grid.png': '{t}/notes.txt' is a "
      'file, not a folder']),
    ('generation/sample.py', [DIT, '{t}/missing.pth', '--classes', '1'],
     ["argument checkpoint: no such file: '{t}/missing.pth'"]),
    # generate.py (the prompt has 3 images unless said otherwise)
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--num-new', '0'],
     ["argument --num-new: must be an integer >= 1, got '0'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--candidates', '0'],
     ["argument --candidates: must be an integer >= 1, got '0'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--temperature', '-0.5'],
     ["argument --temperature: must be a number >= 0, got '-0.5'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--top-k', '-1'],
     ["argument --top-k: must be an integer >= 0, got '-1'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--top-p', '0'],
     ["argument --top-p: must be a number in (0, 1], got '0'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--top-p', '1.5'],
     ["argument --top-p: must be a number in (0, 1], got '1.5'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--temperature', '0', '--top-k', '10'],
     ['argument --temperature: 0 samples greedily, so --top-k 10 would have no effect; drop '
      'them or use a temperature > 0']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--temperature', '0', '--candidates', '3'],
     ['argument --candidates: 3 candidates with --temperature 0 (greedy) would all be the same '
      'images; use --candidates 1 or a temperature > 0']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--context-images', '0'],
     ['argument --context-images: 0 leaves no prompt image in the window, which holds '
      'context_images - 1 = -1 prompt image(s) and the image being generated. Use 2 (the last '
      'prompt image only) to 4 (the whole prompt of 3 image(s))']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--context-images', '1'],
     ['argument --context-images: 1 leaves no prompt image in the window, which holds '
      'context_images - 1 = 0 prompt image(s) and the image being generated. Use 2 (the last '
      'prompt image only) to 4 (the whole prompt of 3 image(s)); larger values keep the whole '
      'prompt too']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/empty', '--out-dir', '{t}/o'],
     ["argument --prompt: the folder '{t}/empty' has no images (files ending in .png, .jpg, "
      '.jpeg, .bmp, .webp, .tif, .tiff)']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/f9.png', '--out-dir', '{t}/o'],
     ["argument --prompt: no such image file or folder: '{t}/f9.png'"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '{t}/frames/f0.png',
                         '--out-dir', '{t}/o', '--layout', 'analogy'],
     ['argument --prompt: --layout analogy takes pairs then a query (x1 y1 x2 y2 ... x_query): an '
      'odd number of images, got 4']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--layout', 'analogy', '--context-images', '3'],
     ['argument --context-images: 3 keeps the last 2 of the 3 prompt images, which starts the '
      'context with a y image; for --layout analogy use an even value (it keeps whole x y pairs '
      'and the query), e.g. 4']),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir',
                         '{t}/notes.txt'],
     ["argument --out-dir: '{t}/notes.txt' is a file, not a folder"]),
    ('lvm/generate.py', [LVM, '{t}/ck.pth', '--prompt', '{t}/frames', '--out-dir', '{t}/o',
                         '--tokenizer-checkpoint', '{t}/vq.pth'],
     ["argument --tokenizer-checkpoint: no such file: '{t}/vq.pth'"]),
    # model converters
    ('model_converters/dit_llama_official.py', ['{t}/ck.pth', '{t}/o.pth', '--prefix',
                                                'denoiser'],
     ["argument --prefix: 'denoiser' would be glued to the key names (denoiserblocks.0...); a "
      "prefix is empty or ends with a dot, e.g. 'denoiser.'"]),
    ('model_converters/dit_llama_official.py', ['{t}/ck.pth', '{t}/o.pth', '--num-heads', '0'],
     ["argument --num-heads: must be an integer >= 1, got '0'"]),
    ('model_converters/dit_llama_official.py', ['{t}/ck.pth', '{t}/o.pth', '--input-size', '-4'],
     ["argument --input-size: must be an integer >= 1, got '-4'"]),
    ('model_converters/dit_llama_official.py', ['{t}/ck.pth', '{t}/ck.pth'],
     ["argument dst: '{t}/ck.pth' is the source checkpoint itself; converting would overwrite "
      'it']),
    ('model_converters/lvm_official.py', ['{t}/ck.pth', '{t}/o.pth'],
     ["argument src: '{t}/ck.pth' is a file, not a folder"]),
    ('model_converters/lvm_official.py', ['{t}/hf', '{t}/o.pth'],
     ["argument src: no such folder: '{t}/hf'"]),
]


@pytest.mark.parametrize('path, argv, parts', CASES,
                         ids=[f'{osp.basename(c[0])}-{i}' for i, c in enumerate(CASES)])
def test_bad_argument_is_refused_at_parse_time(path, argv, parts, files, capsys):
    t = str(files)
    err = refused(tool(path).parse_args, [a.replace('{t}', t) for a in argv], capsys)
    for part in parts:
        assert part.replace('{t}', t) in err, err


def test_shared_converter_cli(files, capsys):
    """``run_cli`` of the VisionLLaMA / ConvNeXt V2 / ViTamin converters."""
    from visionllama_mm.converters import run_cli
    t = str(files)
    cases = [([f'{t}/missing.pth', f'{t}/o.pth'], f"argument src: no such file: '{t}/missing.pth'"),
             ([f'{t}/ck.pth', f'{t}/empty'], f"argument dst: '{t}/empty' is a folder; give a "
                                             'file name'),
             ([f'{t}/ck.pth', f'{t}/ck.pth'], f"argument dst: '{t}/ck.pth' is the source "
                                              'checkpoint itself'),
             ([f'{t}/ck.pth', f'{t}/notes.txt/o.pth'],
              f"argument dst: cannot write the file '{t}/notes.txt/o.pth': '{t}/notes.txt' is a "
              'file, not a folder')]
    for argv, part in cases:
        assert part in refused(lambda a: run_cli('ViTamin', '', a), argv, capsys)


def test_good_arguments_pass(files):
    t = str(files)
    args = tool('train.py').parse_args([CFG, '--resume'])
    assert args.resume == 'auto' and args.local_rank == 0
    # a URL is left to mmengine's loaders
    args = tool('test.py').parse_args([CFG, 'https://example.org/ck.pth'])
    assert (args.interval, args.wait_time) == (1, 2.)
    args = tool('test.py').parse_args([CFG, f'{t}/ck.pth', '--show-dir', f'{t}/new/vis',
                                       '--interval', '3', '--out', f'{t}/new/p.pkl'])
    assert args.interval == 3
    args = tool('analysis_tools/benchmark.py').parse_args(
        [CFG, '--variant', 'a', 'model.x=1', '--warmup', '0', '--shape', '32', '48'])
    assert args.variants == [('a', {'model.x': 1})] and args.shape == [32, 48]
    # a folder prompt is its images by name; the defaults apply unless greedy sampling
    args = tool('lvm/generate.py').parse_args(
        [LVM, f'{t}/ck.pth', '--prompt', f'{t}/frames', '--out-dir', f'{t}/o',
         '--context-images', '2'])
    assert [osp.basename(p) for p in args.prompt] == ['f0.png', 'f1.png', 'f2.png']
    assert (args.top_k, args.top_p, args.context_images) == (50, 1.0, 2)
    args = tool('lvm/generate.py').parse_args(
        [LVM, f'{t}/ck.pth', '--prompt', f'{t}/frames', '--out-dir', f'{t}/o',
         '--layout', 'analogy', '--context-images', '2', '--temperature', '0'])
    assert args.context_images == 2 and args.temperature == 0
    args = tool('model_converters/dit_llama_official.py').parse_args(
        [f'{t}/ck.pth', f'{t}/o.pth', '--prefix', ''])
    assert args.prefix == ''


def test_checks_that_need_the_config(files, monkeypatch):
    """Ranges that come from the config: DDPM steps at most num_timesteps; a --config of
    check_recipe.py that has no record."""
    t = str(files)
    sample = tool('generation/sample.py')
    monkeypatch.setattr(sys, 'argv', ['sample.py', DIT, f'{t}/ck.pth', '--classes', '1',
                                      '--steps', '1001'])
    with pytest.raises(SystemExit, match=r"--steps 1001: DDPM sampling respaces the 1000 "
                                         r"training timesteps \(the config's "
                                         r"model.objective.num_timesteps\), so it takes "
                                         r"2\.\.1000 steps\.$"):
        sample.main()
    recipe = tool('analysis_tools/check_recipe.py')
    monkeypatch.setattr(sys, 'argv', ['check_recipe.py', 'visionllama', '--config',
                                      'visionllama-plain-small-p16_8xb256-800e_in1'])
    with pytest.raises(SystemExit, match=r'--config visionllama-plain-small-p16_8xb256-800e_in1: '
                                         r'no entry of configs/visionllama/recipes.yml is for '
                                         r'this config \(\d+ configs have records\); did you '
                                         r'mean visionllama-plain-small-p16_8xb256-800e_in1k.py'):
        recipe.main()


def test_python_tool_wiring(files):
    """A tool run as a script prints argparse's usage and one error line naming itself."""
    proc = run_python([sys.executable, 'tools/train.py', 'configs/typo.py'])
    assert proc.returncode == 2
    assert "train.py: error: argument config: no such file: 'configs/typo.py'" in proc.stdout
    assert 'Traceback' not in proc.stdout


@pytest.mark.parametrize('argv, env, message', [
    (['tools/dist_train.sh', 'configs/typo.py', '2'], {},
     "dist_train.sh: error: CONFIG: no such file: 'configs/typo.py'"),
    (['tools/dist_train.sh', CFG, 'two'], {},
     "dist_train.sh: error: NUM_PROCESSES must be an integer >= 1, got 'two'"),
    (['tools/dist_train.sh', CFG], {},
     'dist_train.sh: error: expected at least 2 arguments, got 1'),
    (['tools/dist_train.sh', CFG, '2'], {'NNODES': '2', 'NODE_RANK': '2'},
     "dist_train.sh: error: NODE_RANK must be an integer in [0, 1], got '2'"),
    (['tools/dist_test.sh', CFG, '{t}/missing.pth', '1'], {},
     "dist_test.sh: error: CHECKPOINT: no such file: '{t}/missing.pth'"),
    (['tools/dist_test.sh', CFG, '{t}/ck.pth', '0'], {},
     "dist_test.sh: error: NUM_PROCESSES must be an integer >= 1, got '0'"),
    (['tools/dist_test.sh', CFG, '{t}/ck.pth', '1'], {'PORT': '70000'},
     "dist_test.sh: error: PORT must be an integer in [1, 65535], got '70000'"),
    (['tools/slurm_train.sh', 'part', 'job', 'configs/typo.py', 'work'], {},
     "slurm_train.sh: error: CONFIG: no such file: 'configs/typo.py'"),
    (['tools/slurm_train.sh', 'part', 'job', CFG, 'work'], {'GPUS': 'eight'},
     "slurm_train.sh: error: GPUS must be an integer >= 1, got 'eight'"),
    (['tools/slurm_train.sh', 'part', 'job', CFG, '{t}/notes.txt'], {},
     "slurm_train.sh: error: WORK_DIR: '{t}/notes.txt' is a file, not a folder"),
    (['tools/slurm_test.sh', 'part', 'job', CFG], {},
     'slurm_test.sh: error: expected at least 4 arguments, got 3'),
    (['tools/slurm_test.sh', 'part', 'job', CFG, '{t}/ck.pth'], {'GPUS_PER_NODE': '0'},
     "slurm_test.sh: error: GPUS_PER_NODE must be an integer >= 1, got '0'"),
])
def test_shell_launchers(argv, env, message, files):
    """The launchers refuse a missing config or checkpoint and non-numeric counts before torchrun
    or srun start (no python runs: each case takes milliseconds)."""
    t = str(files)
    proc = subprocess.run(['bash', *[a.replace('{t}', t) for a in argv]], cwd=REPO,
                          env={'PATH': '/usr/bin:/bin', **env}, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=60)
    assert proc.returncode == 2, proc.stdout
    assert message.replace('{t}', t) in proc.stdout, proc.stdout

"""LVM visual sentences, laid out as the official ``tokenize_examples/*.py`` scripts build them:
the builders' layouts and seeds, the transforms (resize, gray formula, inpainting masks) and
VisualSentenceDataset items through mmengine data loaders, on crops of scikit-learn's sample
photos and its digits written as files."""
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.dataset import default_collate, pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from PIL import Image

import visionllama_mm  # noqa: F401
from visionllama_mm.datasets import RandomBoxOrPatchMask, VisualSentenceDataset
from visionllama_mm.datasets import visual_sentences as vs

S = 32  # image side after the pipeline's resize


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    """photos/00..11 (48x64 crops, png and jpg), seq_a/ (20 frames panning), seq_b/ (3 frames),
    digits/<label>/ (10 per class), multi/{rgb,depth,edge}/ (basenames 0..5; edge lacks 5)."""
    from sklearn.datasets import load_digits, load_sample_images
    base = tmp_path_factory.mktemp('sentences')
    photos = load_sample_images().images
    for k in range(12):
        y, x = 31 * k, 47 * k
        crop = photos[k % 2][y:y + 48, x:x + 64]
        (base / 'photos').mkdir(exist_ok=True)
        Image.fromarray(crop).save(base / 'photos' / f'{k:02d}.{"png" if k % 3 else "jpg"}')
    for name, n in (('seq_a', 20), ('seq_b', 3)):
        (base / name).mkdir()
        for i in range(n):
            Image.fromarray(photos[0][100:148, 12 * i:12 * i + 64]).save(base / name / f'{i}.png')
    digits = load_digits()
    for label in range(10):
        (base / 'digits' / str(label)).mkdir(parents=True)
        for j, idx in enumerate(np.flatnonzero(digits.target == label)[:10]):
            img = (digits.images[idx] * 255 / 16).astype(np.uint8)
            Image.fromarray(img).save(base / 'digits' / str(label) / f'{j}.png')
    for m in ('rgb', 'depth', 'edge'):
        (base / 'multi' / m).mkdir(parents=True)
        for i in range(6 if m != 'edge' else 5):
            Image.fromarray(photos[1][50 * i:50 * i + 40, :40]).save(
                base / 'multi' / m / f'{i}.{"jpg" if m == "rgb" else "png"}')
    return str(base)


def dataset(root, lines, **kwargs):
    vs.write_sentences(lines, osp.join(root, 'ann.jsonl'))
    return VisualSentenceDataset('ann.jsonl', data_root=root, image_size=S, **kwargs)


def pil_resized(path):
    """The official reading: PIL, RGB, resize((S, S)) with the default filter, / 255."""
    return np.asarray(Image.open(path).convert('RGB').resize((S, S)), np.float32) / 255.


def test_builders_layouts_and_seeds(root):
    photos = vs.list_images('photos', root)
    assert photos == [f'photos/{k:02d}.{"png" if k % 3 else "jpg"}' for k in range(12)]
    assert vs.list_images('seq_a', root)[:3] == ['seq_a/0.png', 'seq_a/1.png', 'seq_a/2.png']
    assert vs.single_image_sentences(photos[:2]) == [
        dict(images=[photos[0]], type='single'), dict(images=[photos[1]], type='single')]

    seqs = [vs.list_images('seq_a', root), vs.list_images('seq_b', root)]
    lines = vs.frame_sequence_sentences(seqs, n_frames=5, max_stride=4, n_epochs=40, seed=0)
    assert lines == vs.frame_sequence_sentences(seqs, n_frames=5, max_stride=4, n_epochs=40)
    assert lines != vs.frame_sequence_sentences(seqs, n_frames=5, max_stride=4, n_epochs=40,
                                                seed=1)
    strides, starts = set(), set()
    for line in lines:  # seq_b (3 frames) is replaced by the only long enough one, seq_a
        idx = [int(osp.splitext(osp.basename(p))[0]) for p in line['images']]
        assert all(p.startswith('seq_a/') for p in line['images']) and len(idx) == 5
        assert np.all(np.diff(idx) == line['stride']) and idx[-1] < 20
        strides.add(line['stride'])
        starts.add(idx[0])
    assert strides == {1, 2, 3, 4} and min(starts) == 0 and max(starts) > 10
    capped = vs.frame_sequence_sentences([seqs[0][:9]], n_frames=5, max_stride=4, n_epochs=20)
    assert {line['stride'] for line in capped} == {1, 2}  # (9 - 1) // (5 - 1)

    # pairs: sorted by name, paired by index, every epoch a new partition of the same pairs
    xs, ys = photos[:10], [f'labels/{k:02d}.png' for k in range(10)]
    lines = vs.paired_sentences(ys[::-1], xs, n_shots=4, n_epochs=3, seed=0)
    assert len(lines) == 3 * (10 // 4) and all(len(line['images']) == 8 for line in lines)
    for line in lines:
        x, y = line['images'][0::2], line['images'][1::2]
        assert [osp.basename(a)[:2] for a in x] == [osp.basename(b)[:2] for b in y]
        assert all(a.startswith('labels/') for a in x)
    epochs = [sorted(p for line in lines[e * 2:e * 2 + 2] for p in line['images'][::2])
              for e in range(3)]
    assert epochs[0] == epochs[1] == epochs[2] == sorted(ys[:8])  # the last 10 % 4 dropped
    assert lines[:2] != lines[2:4]

    for build, kind, epochs in ((vs.colorization_sentences, 'colorization', 2),
                                (vs.inpainting_sentences, 'inpainting', 5)):
        lines = build(photos, n_shots=4)
        assert len(lines) == epochs * 3 and {line['type'] for line in lines} == {kind}
        assert sorted(p for line in lines[:3] for p in line['images']) == photos

    classes = vs.list_classes('digits', root)
    assert list(classes) == [str(i) for i in range(10)]
    lines = vs.category_sentences(classes, images_per_shot=4, n_shots=4, n_epochs=2, seed=0)
    assert len(lines) == 2 * (10 // 4)
    for line in lines:
        assert len(line['images']) == 16 and len(set(line['classes'])) == 4
        for c, group in zip(line['classes'], np.reshape(line['images'], (4, 4))):
            assert all(p.startswith(f'digits/{c}/') for p in group) and len(set(group)) == 4
    assert lines == vs.category_sentences(classes, n_epochs=2, seed=0)

    modalities = {m: vs.list_images(f'multi/{m}', root) for m in ('rgb', 'depth', 'edge')}
    lines = vs.multi_annotation_sentences(modalities, n_examples=2, n_epochs=10, seed=0)
    assert len(lines) == 10 * 2  # 5 complete groups ("5" has no edge) -> 2 sentences per epoch
    for line in lines:
        order = line['modalities']
        assert sorted(order) == ['depth', 'edge', 'rgb'] and len(line['images']) == 6
        for example in np.reshape(line['images'], (2, 3)):  # one shared order per sentence
            assert [p.split('/')[1] for p in example] == order
            assert len({osp.splitext(osp.basename(p))[0] for p in example}) == 1
        assert '5' not in {osp.splitext(osp.basename(p))[0] for p in line['images']}
    assert len({tuple(line['modalities']) for line in lines}) > 2
    fixed = vs.multi_annotation_sentences(modalities, n_examples=2, shuffle_tasks=False)
    assert {tuple(line['modalities']) for line in fixed} == {('rgb', 'depth', 'edge')}


def test_video_sentences_and_frames(root, tmp_path):
    import cv2
    path = tmp_path / 'clip.avi'
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (40, 24))
    # OpenCV writes MJPG in AVI with its own encoder (no FFmpeg needed): a failure here is a fault
    assert writer.isOpened(), f'cv2 {cv2.__version__} cannot open an MJPG writer for {path}'
    for i in range(30):  # frame i: red = 8 i, blue = 255 - 8 i (BGR order on disk)
        writer.write(np.dstack([np.full((24, 40), 255 - 8 * i), np.zeros((24, 40)),
                                np.full((24, 40), 8 * i)]).astype(np.uint8))
    writer.release()
    short = tmp_path / 'short.avi'
    writer = cv2.VideoWriter(str(short), cv2.VideoWriter_fourcc(*'MJPG'), 10, (40, 24))
    for i in range(3):
        writer.write(np.zeros((24, 40, 3), np.uint8))
    writer.release()
    videos = ['clip.avi', 'short.avi']
    lines = vs.video_sentences(videos, str(tmp_path), n_frames=4, strides=(2, 20), seed=0)
    assert lines == vs.video_sentences(videos, str(tmp_path), n_frames=4, strides=(2, 20))
    assert len(lines) == 4 and all(line['video'] == 'clip.avi' for line in lines)
    assert [line['stride'] for line in lines] == [2, 2, 9, 9]  # 20 capped at (30 - 1) // 3
    for line in lines:
        assert np.all(np.diff(line['frames']) == line['stride']) and line['frames'][-1] < 30

    ds = dataset(str(tmp_path), lines[2:3])
    item = ds[0]
    assert item['inputs'].shape == (4, 3, S, S)
    red = item['inputs'][:, 0].mean((1, 2)) * 255
    blue = item['inputs'][:, 2].mean((1, 2)) * 255
    frames = torch.tensor(lines[2]['frames'], dtype=torch.float32)
    assert torch.allclose(red, 8 * frames, atol=4) and torch.allclose(blue, 255 - 8 * frames,
                                                                      atol=4)
    assert item['data_samples'].frames == lines[2]['frames']
    ds = dataset(str(tmp_path), [dict(video='clip.avi', frames=[28, 31])])
    with pytest.raises(ValueError, match='has only 30 frames, frame 31 was asked for'):
        ds[0]


def test_items_resize_gray_pairs_and_eval_lines(root):
    photos = vs.list_images('photos', root)
    lines = [dict(images=photos[:3], type='sequence'), dict(images=photos[3:5],
                                                            type='colorization'),
             {'input': photos[5:8], 'target': [photos[8]]}, {'input': photos[:2],
                                                             'output': photos[9]}]
    ds = dataset(root, lines)
    seq, color, ppl, gen = (ds[i] for i in range(4))
    assert seq['inputs'].dtype == torch.float32 and seq['inputs'].shape == (3, 3, S, S)
    for k in range(3):  # resized by PIL's default filter from the RGB file, no crop
        expected = pil_resized(osp.join(root, photos[k]))
        assert np.array_equal(seq['inputs'][k].permute(1, 2, 0).numpy(), expected)
    meta = seq['data_samples'].metainfo
    assert meta == dict(sentence_type='sequence', num_images=3, num_target_images=0,
                        img_paths=[osp.join(root, p) for p in photos[:3]])
    # colorization: [g1, c1, g2, c2], gray = 0.2989 R + 0.5870 G + 0.1140 B in all channels
    assert color['inputs'].shape == (4, 3, S, S)
    for k in range(2):
        c = color['inputs'][2 * k + 1]
        assert np.array_equal(c.permute(1, 2, 0).numpy(),
                              pil_resized(osp.join(root, photos[3 + k])))
        gray = 0.2989 * c[0] + 0.5870 * c[1] + 0.1140 * c[2]
        assert torch.allclose(color['inputs'][2 * k], gray.expand(3, S, S), atol=1e-6)
    assert color['data_samples'].num_images == 4
    assert color['data_samples'].img_paths[:2] == [osp.join(root, photos[3])] * 2
    assert ppl['data_samples'].sentence_type == 'perplexity'
    assert (ppl['data_samples'].num_images, ppl['data_samples'].num_target_images) == (4, 1)
    assert np.array_equal(ppl['inputs'][3].permute(1, 2, 0).numpy(),
                          pil_resized(osp.join(root, photos[8])))
    assert gen['data_samples'].sentence_type == 'generation'
    assert gen['data_samples'].num_target_images == 1 and gen['inputs'].shape[0] == 3

    # mmengine data loaders with the stock collate functions
    loader = torch.utils.data.DataLoader(ds, batch_size=4, collate_fn=pseudo_collate)
    batch = next(iter(loader))
    assert [x.shape[0] for x in batch['inputs']] == [3, 4, 4, 3]
    assert all(isinstance(d, BaseDataElement) for d in batch['data_samples'])
    init_default_scope('mmpretrain')
    loader = Runner.build_dataloader(dict(
        batch_size=2, num_workers=0, sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='default_collate'),
        dataset=dict(type='VisualSentenceDataset', ann_file='ann.jsonl', data_root=root,
                     image_size=S, indices=[1, 2])))
    batch = next(iter(loader))
    assert batch['inputs'].shape == (2, 4, 3, S, S)
    assert [d.sentence_type for d in batch['data_samples']] == ['colorization', 'perplexity']
    assert default_collate([seq, seq])['inputs'].shape == (2, 3, 3, S, S)


def test_inpainting_masks(root):
    photos = vs.list_images('photos', root)
    lines = vs.inpainting_sentences(photos, n_shots=4, n_epochs=2, seed=0)
    ds = dataset(root, lines, seed=7)
    item = ds[0]
    assert item['inputs'].shape == (8, 3, S, S)
    masked, original = item['inputs'][0::2], item['inputs'][1::2]
    for k, path in enumerate(lines[0]['images']):
        assert np.array_equal(original[k].permute(1, 2, 0).numpy(),
                              pil_resized(osp.join(root, path)))
    hidden = (masked != original).any(1)  # (4, S, S)
    assert hidden.any() and torch.all(masked.permute(0, 2, 3, 1)[hidden] == 0)  # black pixels
    assert ds[0]['inputs'].equal(item['inputs'])  # the same masks every time
    assert not dataset(root, lines, seed=8)[0]['inputs'].equal(item['inputs'])

    # statistics of one image's mask (64 px: squares of side 6..31, or 8x8 patches of 8 px)
    mask = RandomBoxOrPatchMask()
    ones = np.ones((64, 64, 3), np.float32)
    boxes, keep_fractions = [], []
    for seed in range(1500):
        zero = mask.mask(ones, np.random.default_rng(seed))[..., 0] == 0
        cells = zero.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64)
        whole_cells = np.all(cells.all(1) | ~cells.any(1))
        rows, cols = np.flatnonzero(zero.any(1)), np.flatnonzero(zero.any(0))
        square = rows.size > 0 and rows.size == cols.size and zero.sum() == rows.size ** 2 \
            and rows[-1] - rows[0] + 1 == rows.size
        if square and not whole_cells:
            boxes.append((rows.size, rows[0], cols[0]))
        else:  # patches: whole 8x8 cells only
            assert whole_cells
            keep_fractions.append(1 - zero.mean())
    boxes = np.array(boxes)
    assert abs(len(boxes) / 1500 - 0.3) < 0.04
    assert boxes[:, 0].min() == 6 and boxes[:, 0].max() == 31
    assert abs(boxes[:, 0].mean() - 18.5) < 1.5
    assert boxes[:, 1].min() == 0 and (boxes[:, 0] + boxes[:, 1]).max() == 64
    assert abs(np.mean(keep_fractions) - 0.5) < 0.04  # kept with prob r, r ~ U(0, 1)
    assert np.std(keep_fractions) > 0.25  # r varies per image (uniform: std 0.29)


def test_clear_errors(root, tmp_path):
    ann = tmp_path / 'a.jsonl'
    cases = [('{"images": ["x.png"]}\nnot json\n', r'a.jsonl:2: not a JSON object'),
             ('{"images": []}\n', r'a.jsonl:1: "images" must be a path or a non-empty list'),
             ('{"images": ["x.png"], "type": "poem"}\n', r"unknown type 'poem'"),
             ('{"pictures": ["x.png"]}\n', r'expected "images" .* the line has \[.pictures.\]'),
             ('{"input": ["x.png"]}\n', r'exactly one of "target" \(perplexity\)'),
             ('{"video": "v.mp4", "frames": [-1]}\n', r'needs "frames", a non-empty list'),
             ('\n\n', 'has no sentences')]
    for text, message in cases:
        ann.write_text(text)
        with pytest.raises(ValueError, match=message):
            VisualSentenceDataset(str(ann))
    with pytest.raises(FileNotFoundError, match='annotation file .*missing.jsonl does not exist'):
        VisualSentenceDataset(str(tmp_path / 'missing.jsonl'))
    ann.write_text(json.dumps(dict(images=['photos/00.jpg', 'photos/nope.png'])) + '\n')
    with pytest.raises(FileNotFoundError, match=r'nope.png \(sample 0\) does not exist'):
        VisualSentenceDataset(str(ann), data_root=root, image_size=S)[0]
    with pytest.raises(ValueError, match='image 30x30 is not a whole number of 8x8 patches'):
        RandomBoxOrPatchMask(box_prob=0).mask(np.ones((30, 30, 3)), np.random.default_rng(0))
    with pytest.raises(KeyError, match='no "rng_seed"'):
        RandomBoxOrPatchMask()(dict(sentence_type='inpainting', imgs=[]))
    with pytest.raises(ValueError, match='10 inputs but 9 targets'):
        vs.paired_sentences(['a'] * 10, ['b'] * 9)
    with pytest.raises(ValueError, match='3 items are fewer than one sentence of 8'):
        vs.colorization_sentences(['a', 'b', 'c'])
    with pytest.raises(ValueError, match=r'no sequence has n_frames=16 frames \(longest: 3\)'):
        vs.frame_sequence_sentences([['a', 'b', 'c']])
    with pytest.raises(ValueError, match="modality 'rgb' has two files named 'x'"):
        vs.multi_annotation_sentences({'rgb': ['a/x.jpg', 'b/x.png']})
    with pytest.raises(FileNotFoundError, match='is not a directory'):
        vs.list_images('nowhere', root)


def test_build_sentences_cli(root, tmp_path):
    import importlib.util

    from ..conftest import REPO
    spec = importlib.util.spec_from_file_location(
        'build_sentences', osp.join(REPO, 'tools', 'lvm', 'build_sentences.py'))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)

    def lines(*argv):
        out = str(tmp_path / 'out.jsonl')
        tool.main([out, '--data-root', root, '--seed', '3', '--overwrite', *argv])
        with open(out) as f:
            return [json.loads(line) for line in f]

    assert lines('pair', '--inputs', 'multi/rgb', '--targets', 'multi/depth', '--n-shots', '2',
                 '--n-epochs', '2') == vs.paired_sentences(vs.list_images('multi/rgb', root),
                                                           vs.list_images('multi/depth', root),
                                                           n_shots=2, n_epochs=2, seed=3)
    assert lines('frames', '--sequences', 'seq_a', 'seq_b', '--n-frames', '4') == \
        vs.frame_sequence_sentences([vs.list_images('seq_a', root), vs.list_images('seq_b', root)],
                                    n_frames=4, seed=3)
    multi = lines('multi', '--modalities', 'rgb=multi/rgb', 'edge=multi/edge', '--n-examples', '2')
    assert len(multi) == 5 * 2 and {len(line['images']) for line in multi} == {4}
    category = lines('category', '--classes', 'digits')
    assert len(category) == 2 and len(category[0]['images']) == 16

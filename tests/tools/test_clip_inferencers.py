"""mmpretrain's own inferencers and ``tools/test.py`` on the tiny ViTamin CLIP that the tests train
on digit captions (tests/conftest.py ``clip_digits_run``), each checked on held-out digits:
``TextToImageRetrievalInferencer`` and ``ImageToTextRetrievalInferencer`` with the model set up as
the retrieval configs set theirs up, ``ImageClassificationInferencer`` for zero-shot
classification with the training config as it is, and ``tools/test.py`` running the shipped
Flickr30k retrieval config (model shrunk to the checkpoint's) on held-out digits written in
Flickr30k's annotation format, five unseen captions each."""
import glob
import os.path as osp
import re

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.apis import (ImageClassificationInferencer, ImageToTextRetrievalInferencer,
                             TextToImageRetrievalInferencer)
from PIL import Image

import visionllama_mm  # noqa: F401
from ..conftest import REPO, run_tool
from ..data_fixtures import write_flickr30k

CLIP = osp.join(REPO, 'configs/vitamin/clip_vitamin-tiny_1xb64-300it_digits.py')
RETRIEVAL = 'configs/vitamin/clip_vitamin-large_zeroshot-retrieval_flickr30k.py'
WORDS = ['zero', 'one', 'two', 'three', 'four', 'five', 'six', 'seven', 'eight', 'nine']
# none of these was a training caption (tools/dataset_converters/digit_captions.py)
CAPTIONS = ['a drawing of the digit {}.', 'a picture of the number {}.', 'this is a {}.',
            'the handwritten numeral {}.', 'a small grey {} on black.']


@pytest.fixture(scope='module')
def ckpt(clip_digits_run):
    return osp.join(clip_digits_run[0], 'iter_300.pth')


def _held_out(digits_root, per_class):
    """The first ``per_class`` held-out images of each digit: [(path, digit)]."""
    return [(p, d) for d in range(10)
            for p in sorted(glob.glob(osp.join(digits_root, 'val', str(d), '*.png')))[:per_class]]


def _retrieval_config():
    """The digits CLIP's config set up as the shipped retrieval configs set theirs up: their
    preprocessor (MultiModalDataPreprocessor, which passes caption-only batches) and their
    PackInputs (which packs the captions)."""
    cfg = Config.fromfile(CLIP)
    shipped = Config.fromfile(osp.join(REPO, RETRIEVAL))
    cfg.model.data_preprocessor.type = shipped.model.data_preprocessor.type
    cfg.test_dataloader.dataset.pipeline[-1] = shipped.test_dataloader.dataset.pipeline[-1]
    return cfg


def _similarity(model, paths, texts):
    """Cosine similarity (images x texts) computed here from the model's towers."""
    images = torch.stack([torch.from_numpy(np.array(Image.open(p).convert('RGB'))).permute(
        2, 0, 1) for p in paths])
    with torch.no_grad():
        image = model.extract_image_feat(model.data_preprocessor(
            dict(inputs=images), False)['images'])
        text = model.extract_text_feat(model.tokenizer(texts))
    return image @ text.t()


def test_text_to_image_retrieval_inferencer_finds_the_digit_named(ckpt, digits_root):
    """Gallery: 3 held-out images of each digit; queries: a caption per digit never seen in
    training. The inferencer's top match is the image the model's own similarity ranks first,
    and shows the digit named for at least 8 of the 10 queries."""
    gallery = _held_out(digits_root, 3)
    inferencer = TextToImageRetrievalInferencer(
        _retrieval_config(), prototype=[p for p, _ in gallery], pretrained=ckpt, device='cpu')
    queries = [CAPTIONS[0].format(w) for w in WORDS]
    results = inferencer(queries, topk=3)
    sim = _similarity(inferencer.model, [p for p, _ in gallery], queries)
    top = [r[0]['sample_idx'] for r in results]
    assert top == sim.argmax(dim=0).tolist()
    for r, column in zip(results, sim.t()):
        torch.testing.assert_close(torch.stack([m['match_score'] for m in r]),
                                   column.topk(3).values, rtol=1e-4, atol=1e-5)
        assert r[0]['sample']['img_path'] == gallery[r[0]['sample_idx']][0]
    hits = sum(gallery[i][1] == d for d, i in enumerate(top))
    print(f'text -> image: the top image shows the digit named for {hits} of 10 queries')
    assert hits >= 8


def test_image_to_text_retrieval_inferencer_names_the_digit(ckpt, digits_root):
    """Gallery: one unseen caption per digit; queries: 2 held-out images of each digit. The top
    caption is the model's own first choice, and names the digit shown for at least 80%."""
    texts = [CAPTIONS[1].format(w) for w in WORDS]
    inferencer = ImageToTextRetrievalInferencer(_retrieval_config(), prototype=texts,
                                                pretrained=ckpt, device='cpu')
    queries = _held_out(digits_root, 2)
    results = inferencer([p for p, _ in queries], batch_size=5)
    sim = _similarity(inferencer.model, [p for p, _ in queries], texts)
    assert [int(r[0]['sample_idx']) for r in results] == sim.argmax(dim=1).tolist()
    assert all(r[0]['text'] == texts[int(r[0]['sample_idx'])] for r in results)
    right = sum(r[0]['text'] == texts[d] for r, (_, d) in zip(results, queries))
    print(f'image -> text: the top caption names the digit shown for {right} of 20 images')
    assert right >= 16


def test_zero_shot_classification_through_image_classification_inferencer(ckpt, digits_root):
    """The training config as it is (its zero-shot class names and templates): the stock
    classification inferencer gives the class the model's predict mode gives, right for at least
    80% of 30 held-out digits."""
    cfg = Config.fromfile(CLIP)
    inferencer = ImageClassificationInferencer(cfg, pretrained=ckpt, device='cpu',
                                               classes=cfg.model.zero_shot.classes)
    images = _held_out(digits_root, 3)
    results = inferencer([p for p, _ in images], batch_size=10)
    assert all(r['pred_class'] == WORDS[r['pred_label']] for r in results)
    assert all(len(r['pred_scores']) == 10 and abs(r['pred_scores'].sum() - 1) < 1e-4
               for r in results)
    right = sum(r['pred_label'] == d for r, (_, d) in zip(results, images))
    print(f'zero-shot through ImageClassificationInferencer: {right} of 30 held-out digits')
    assert right >= 24


def test_tools_test_runs_the_flickr30k_retrieval_config(ckpt, digits_root, tmp_path, python):
    """``tools/test.py`` with the shipped Flickr30k config (RetrievalTestLoop, RetrievalRecall
    at 1/5/10), its model shrunk to the checkpoint's by --cfg-options, on one held-out image of
    each digit with five unseen captions each, in Flickr30k's annotation format."""
    samples = [(np.asarray(Image.open(p).convert('RGB')), [c.format(WORDS[d]) for c in CAPTIONS])
               for p, d in _held_out(digits_root, 1)]
    root = write_flickr30k(str(tmp_path / 'flickr30k'), samples, ext='.png')
    model = ['model.vision_backbone.arch._delete_=True',
             'model.vision_backbone.arch.stem_channels=16',
             'model.vision_backbone.arch.channels=(16,32)',
             'model.vision_backbone.arch.depths=(1,1)', 'model.vision_backbone.arch.embed_dims=64',
             'model.vision_backbone.arch.num_layers=2', 'model.vision_backbone.arch.num_heads=2',
             'model.vision_backbone.img_size=32', 'model.text_encoder.embed_dims=64',
             'model.text_encoder.proj_dims=64', 'model.text_encoder.num_layers=2',
             'model.text_encoder.num_heads=2', 'model.context_length=16',
             'model.data_preprocessor.mean=[87.0,87.0,87.0]',
             'model.data_preprocessor.std=[103.0,103.0,103.0]',
             'model.data_preprocessor.to_rgb=False']
    data = [f'test_dataloader.dataset.data_root={root}', 'test_dataloader.num_workers=0',
            'test_dataloader.persistent_workers=False', 'test_dataloader.batch_size=4',
            'test_dataloader.dataset.pipeline.1.scale=32',
            'test_dataloader.dataset.pipeline.2.crop_size=32']
    out = run_tool([python, 'tools/test.py', RETRIEVAL, ckpt, '--work-dir', str(tmp_path / 'w'),
                    '--cfg-options', *model, *data])
    found = dict(re.findall(r'((?:i2t|t2i)/retrieval/Recall@\d+): ([\d.]+)', out))
    assert sorted(found) == sorted(f'{d}/retrieval/Recall@{k}' for d in ('i2t', 't2i')
                                   for k in (1, 5, 10)), out[-3000:]
    recall = {k: float(v) for k, v in found.items()}
    print('tools/test.py, Flickr30k format, 10 held-out digits x 5 unseen captions:', recall)
    assert recall['t2i/retrieval/Recall@10'] == 100.0  # 10 images: every one is in the top 10
    assert recall['i2t/retrieval/Recall@1'] >= 70.0 and recall['t2i/retrieval/Recall@1'] >= 60.0

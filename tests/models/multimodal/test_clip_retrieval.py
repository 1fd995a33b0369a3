"""Image-text retrieval with ContrastiveCLIP through mmpretrain's own pieces: ``COCORetrieval`` /
``Flickr30kRetrieval`` read tiny datasets written in the real annotation formats (five captions
per image), :meth:`ContrastiveCLIP.predict_all` ranks, ``RetrievalRecall`` scores. A similarity
chosen by hand gives hand-computed recalls, and the shipped configs run ``RetrievalTestLoop``
through the Runner with recalls equal to those computed here from the model's own embeddings."""
import copy
import json
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmpretrain.datasets import COCORetrieval, Flickr30kRetrieval
from mmpretrain.evaluation import RetrievalRecall
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import visionllama_mm  # noqa: F401
from visionllama_mm.engine.runner import Runner
from ...data_fixtures import write_coco_karpathy, write_flickr30k
from .test_clip import TINY_VISION

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONFIGS = {'coco': 'configs/vitamin/clip_vitamin-large_zeroshot-retrieval_coco.py',
           'flickr30k': 'configs/vitamin/clip_vitamin-large_zeroshot-retrieval_flickr30k.py'}
TINY_TEXT = dict(type='CLIPTextTransformer', embed_dims=32, proj_dims=24, num_layers=1,
                 num_heads=2)
PACK = dict(type='PackInputs', algorithm_keys=['text', 'gt_text_id', 'gt_image_id'],
            meta_keys=['image_id'])

# The hand-built similarity: S[i, g * 5 + k] is the score of image i for caption k of image g.
S = np.zeros((4, 20))
for k in range(5):  # image 0's captions: image 0 first
    S[:, k] = [0.90 + 0.01 * k, 0.50 + 0.01 * k, 0.20 + 0.01 * k, 0.05 + 0.01 * k]
S[:, 5:10] = np.array([[0.10, 0.70, 0.30, 0.02],  # image 1's captions: image 1 ranks 1
                       [0.11, 0.69, 0.31, 0.03],  # 1
                       [0.12, 0.40, 0.45, 0.04],  # 2 (image 2 above)
                       [0.46, 0.41, 0.47, 0.065],  # 3 (images 2 and 0 above)
                       [0.48, 0.05, 0.49, 0.29]]).T  # 4
S[:, 10] = [0.60, 0.15, 0.33, 0.075]  # image 2's captions: image 2 ranks 2 (image 0 above)
for k in range(1, 5):  # ... (image 3 above)
    S[:, 10 + k] = [0.13 + 0.01 * k, 0.16 + 0.01 * k, 0.34 + 0.01 * k, 0.80 + 0.01 * k]
S[:, 15] = [0.08, 0.09, 0.095, 0.305]  # image 3's captions: image 3 ranks 1
for k in range(1, 5):  # ... then 4
    S[:, 15 + k] = [0.85 + 0.01 * k, 0.55 + 0.01 * k, 0.60 + 0.01 * k, 0.001 * k]
# Recall by hand. Text -> image, the true image's rank per caption: image 0's 1,1,1,1,1; image
# 1's 1,1,2,3,4; image 2's 2,2,2,2,2; image 3's 1,4,4,4,4. R@1 = 8/20, R@2 = 14/20, R@4 = 20/20.
T2I = {'Recall@1': 40.0, 'Recall@2': 70.0, 'Recall@4': 100.0}
# Image -> text, the rank of each image's best own caption among the 20 (row i of S): image 0:
# 1 (0.94); image 1: 1 (0.70); image 2: 8 (0.38 after 0.45, 0.47, 0.49, 0.61 ... 0.64); image 3:
# 5 (0.305 after 0.81 ... 0.84). R@1 = 2/4, R@5 = 3/4, R@10 = 4/4.
I2T = {'Recall@1': 50.0, 'Recall@5': 75.0, 'Recall@10': 100.0}


def _captions(i, n=5):
    return [f'a picture number {i}, caption {k}.' for k in range(n)]


def _images(num, size=32, seed=0):
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (size, size + 8 * (i % 2), 3), dtype=np.uint8)
            for i in range(num)]


def _model(**kw):
    torch.manual_seed(0)
    return MODELS.build(dict(type='ContrastiveCLIP', vision_backbone=TINY_VISION,
                             text_encoder=TINY_TEXT, context_length=16,
                             data_preprocessor=dict(type='MultiModalDataPreprocessor'),
                             **kw)).eval()


def _coco_samples(root):
    """The test-mode data samples of the COCO fixture, packed as the configs pack them."""
    data = COCORetrieval(ann_file='annotations/caption_karpathy_test2014.json', data_root=root,
                         test_mode=True, pipeline=[PACK])
    return data, [data[i]['data_samples'] for i in range(len(data))]


def _known_feats(model, samples):
    """``tensor``-mode features of ``samples`` (ids from the data samples, as the loop gets
    them) with the embeddings replaced so that image_feat @ text_feat.T is S: image i is the
    i-th unit vector, caption k of image g the column g * 5 + k of S."""
    feats = model.extract_feat(torch.zeros(len(samples), 3, 32, 32), samples)
    image_id, text_id = feats['image_id'], feats['text_id']
    feats['image_feat'] = torch.eye(4)[image_id]
    # COCO lists captions round-robin: caption id t is caption t // 4 of image t % 4
    feats['text_feat'] = torch.as_tensor(S.T[(text_id % 4) * 5 + text_id // 4], dtype=torch.float)
    return feats


def _recall(samples, topk):
    evaluator = Evaluator(RetrievalRecall(topk=topk))
    evaluator.process(samples)
    return {k.split('/')[-1]: round(v, 4) for k, v in evaluator.evaluate(len(samples)).items()}


def test_fixtures_are_read_by_mmpretrains_retrieval_datasets(tmp_path):
    """Both layouts give 4 images x 5 captions with dataset-order ids; COCO's captions are
    listed round-robin, so image i's caption ids are i, i + 4, ...; Flickr30k keeps the test
    split only."""
    samples = [(image, _captions(i)) for i, image in enumerate(_images(5))]
    write_coco_karpathy(str(tmp_path / 'coco'), samples[:4])
    coco = COCORetrieval(ann_file='annotations/caption_karpathy_test2014.json',
                         data_root=str(tmp_path / 'coco'), test_mode=True)
    write_flickr30k(str(tmp_path / 'flickr'), samples, splits=['train'] + ['test'] * 4)
    flickr = Flickr30kRetrieval(data_root=str(tmp_path / 'flickr'), data_prefix='images',
                                ann_file='annotations/dataset_flickr30k.json', split='test',
                                test_mode=True)
    for data, first, text_ids in ((coco, 0, lambda i: [i + 4 * k for k in range(5)]),
                                  (flickr, 1, lambda i: [5 * i + k for k in range(5)])):
        assert (len(data), data.img_size, data.text_size) == (4, 4, 20)
        for i in range(4):
            info = data.get_data_info(i)
            assert info['text'] == _captions(first + i)
            assert (info['image_id'], info['gt_image_id']) == (i, [i] * 5)
            assert info['gt_text_id'] == text_ids(i)
            assert osp.isfile(info['img_path'])


def test_recall_of_a_known_similarity_equals_the_hand_computed_one(tmp_path):
    """mmpretrain's RetrievalRecall on predict_all's rankings of the similarity S (4 COCO-format
    images x 5 captions listed round-robin), the images taken in the order 2, 0, 3, 1 (a
    sampler's): the galleries are placed by the dataset's ids, so the recalls are S's."""
    root = write_coco_karpathy(str(tmp_path), [(im, _captions(i))
                                               for i, im in enumerate(_images(4))])
    data, samples = _coco_samples(root)
    model = _model()
    feats = _known_feats(model, [samples[i] for i in (2, 0, 3, 1)])
    assert feats['image_id'].tolist() == [2, 0, 3, 1]
    assert feats['text_id'].tolist() == [2, 6, 10, 14, 18, 0, 4, 8, 12, 16, 3, 7, 11, 15, 19,
                                         1, 5, 9, 13, 17]
    i2t, t2i = model.predict_all(feats, [samples[i] for i in (2, 0, 3, 1)],
                                 num_images=data.img_size, num_texts=data.text_size)
    assert len(i2t) == 4 and len(t2i) == 20
    assert t2i[0].text == _captions(2)[0] and t2i[0].gt_label.tolist() == [2]
    assert i2t[0].gt_label.tolist() == [2, 6, 10, 14, 18]
    t = np.arange(20)  # image 2's scores, in caption-id order
    torch.testing.assert_close(i2t[0].pred_score,
                               torch.as_tensor(S[2, (t % 4) * 5 + t // 4], dtype=torch.float))
    assert _recall(i2t, (1, 5, 10)) == I2T
    assert _recall(t2i, (1, 2, 4)) == T2I


def test_a_test_set_with_missing_or_foreign_samples_is_refused(tmp_path):
    root = write_coco_karpathy(str(tmp_path), [(im, _captions(i))
                                               for i, im in enumerate(_images(4))])
    data, samples = _coco_samples(root)
    model = _model()
    feats = _known_feats(model, samples[:3])  # the last batch dropped
    with pytest.raises(ValueError, match=r'1 of the 4 images of the dataset have no features '
                                         r'\(ids \[3\]\): every test sample must be encoded'):
        model.predict_all(feats, samples[:3], num_images=4, num_texts=15, cal_i2t=False)
    with pytest.raises(ValueError, match=r'5 of the 20 texts of the dataset have no features '
                                         r'\(ids \[3, 7, 11, 15, 19\]\)'):
        model.predict_all(feats, samples[:3], num_images=3, num_texts=20, cal_t2i=False)
    with pytest.raises(ValueError, match=r'image ids must lie in \[0, 2\) \(the images of the '
                                         r'dataset\), got ids 0 to 2'):
        model.predict_all(feats, samples[:3], num_images=2, cal_i2t=False)
    with pytest.raises(ValueError, match='nothing to encode: give images, or data samples with '
                                         '`text` or `text_tokens`'):
        model.extract_feat(None, [DataSample()])
    with pytest.raises(ValueError, match='got both inputs and images'):
        model(torch.zeros(1, 3, 32, 32), None, mode='tensor', images=torch.zeros(1, 3, 32, 32))


def _tiny_config(name, data_root):
    """The shipped config with a tiny random-weight CLIP at 32 px and the fixture as its data."""
    cfg = Config.fromfile(osp.join(REPO, CONFIGS[name]))
    cfg.model.vision_backbone = dict(TINY_VISION, drop_path_rate=0.1)
    cfg.model.text_encoder = dict(TINY_TEXT)
    loader = cfg.test_dataloader
    loader.update(batch_size=5, num_workers=0, persistent_workers=False)
    loader.dataset.data_root = data_root
    loader.dataset.pipeline[1].scale = 32
    loader.dataset.pipeline[2].crop_size = 32
    cfg.val_dataloader = copy.deepcopy(loader)
    return cfg


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_retrieval_configs_run_the_stock_loop_with_the_recall_of_the_models_embeddings(
        name, tmp_path):
    """RetrievalTestLoop of the shipped config (its pipeline, preprocessor and RetrievalRecall
    at top 1/5/10) on 12 images x 5 captions, batches of 5 (the last one partial): the loop's
    recalls in both directions equal those computed here from the model's embeddings of every
    image and of the captions in the annotation file's order."""
    samples = [(image, _captions(i)) for i, image in enumerate(_images(12, seed=1))]
    root = str(tmp_path / name)
    if name == 'coco':
        write_coco_karpathy(root, samples)
        ann = json.load(open(osp.join(root, 'annotations', 'caption_karpathy_test2014.json')))
        index = {im['id']: i for i, im in enumerate(ann['images'])}
        texts = [(a['caption'], index[a['image_id']]) for a in ann['annotations']]
    else:
        write_flickr30k(root, samples)
        ann = json.load(open(osp.join(root, 'annotations', 'dataset_flickr30k.json')))
        texts = [(s['raw'], i) for i, im in enumerate(ann['images']) for s in im['sentences']]
    cfg = _tiny_config(name, root)
    cfg.work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(cfg)  # the runner the configs name (CheckedRunner)
    metrics = runner.test()
    model = runner.model
    dataset = runner.test_dataloader.dataset
    batch = model.data_preprocessor(
        dict(inputs=torch.stack([dataset[i]['inputs'] for i in range(12)])), False)['images']
    with torch.no_grad():
        image = model.extract_image_feat(batch).numpy()
        text = model.extract_text_feat(model.tokenizer([t for t, _ in texts])).numpy()
    owner = np.array([i for _, i in texts])
    sim = image @ text.T
    for k in (1, 5, 10):
        best = np.argsort(-sim, axis=1)[:, :k]
        i2t = np.mean([np.isin(np.flatnonzero(owner == i), best[i]).any() for i in range(12)])
        t2i = np.mean([owner[t] in np.argsort(-sim[:, t])[:k] for t in range(len(texts))])
        assert metrics[f'i2t/retrieval/Recall@{k}'] == pytest.approx(100 * i2t, abs=1e-4)
        assert metrics[f't2i/retrieval/Recall@{k}'] == pytest.approx(100 * t2i, abs=1e-4)
    print(f'{name}: tiny random CLIP, 12 images x 5 captions:',
          {k: round(v, 2) for k, v in metrics.items()})


@pytest.mark.parametrize('variant,res', [('large', 224), ('xlarge-384', 384)])
def test_retrieval_configs_evaluate_the_zero_shot_model_at_its_eval_transform(variant, res):
    """Each retrieval config is its zero-shot config's model (the released weights load into
    it) with mmpretrain's retrieval data, loop and metric: COCO 5k / Flickr30k 1k Karpathy test,
    recall@1/5/10, the model's short-side resize + centre crop, MultiModalDataPreprocessor with
    the same normalisation."""
    zero_shot = Config.fromfile(
        osp.join(REPO, f'configs/vitamin/clip_vitamin-{variant}_zeroshot-cls_in1k.py'))
    for name, data in (('coco', dict(type='COCORetrieval', data_root='data/coco',
                                     ann_file='annotations/caption_karpathy_test2014.json')),
                       ('flickr30k', dict(type='Flickr30kRetrieval', data_root='data/flickr30k',
                                          ann_file='annotations/dataset_flickr30k.json',
                                          data_prefix='images', split='test'))):
        cfg = Config.fromfile(osp.join(
            REPO, f'configs/vitamin/clip_vitamin-{variant}_zeroshot-retrieval_{name}.py'))
        model = copy.deepcopy(cfg.model.to_dict())
        pre = model.pop('data_preprocessor')
        expected = zero_shot.model.to_dict()
        assert pre == dict(expected.pop('data_preprocessor'), type='MultiModalDataPreprocessor')
        assert model == expected and model['vision_backbone']['img_size'] == res
        for loader in (cfg.test_dataloader, cfg.val_dataloader):
            dataset = dict(loader.dataset)
            load, resize, crop, pack = dataset.pop('pipeline')
            assert dataset == dict(data, test_mode=True)
            assert (resize.scale, crop.crop_size) == (res, res)
            assert (resize.edge, resize.interpolation, resize.backend) == (
                'short', 'bicubic', 'pillow')
            assert pack == PACK
        assert cfg.test_cfg == dict(type='RetrievalTestLoop')
        assert cfg.val_cfg == dict(type='RetrievalValLoop')
        assert cfg.test_evaluator == cfg.val_evaluator == dict(type='RetrievalRecall',
                                                               topk=(1, 5, 10))

"""--cfg-options that shrink the dense configs (model size, image scale, iterations, data)."""
import importlib
import os.path as osp


def stock_tools(toolbox):
    """The tools/ folder shipped inside an installed toolbox."""
    return osp.join(osp.dirname(importlib.import_module(toolbox).__file__), '.mim', 'tools')


# `_delete_` replaces the shipped arch (a name such as 'mae-base') by the tiny dict
TINY_PLAIN = [
    'model.backbone.arch._delete_=True', 'model.backbone.arch.embed_dims=64',
    'model.backbone.arch.num_layers=4',
    'model.backbone.arch.num_heads=2', 'model.backbone.arch.feedforward_channels=128',
    'model.backbone.init_cfg=None',
]


def _loaders(root, extra_test=()):
    opts = []
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.dataset.data_root={root}',
                 f'{split}_dataloader.num_workers=0',
                 f'{split}_dataloader.persistent_workers=False']
    return opts


# The shipped test resize (2048, 512) shrunk so that a real ADE20K image (683x512, 500x375,
# 512x683) reaches the network as 75x56 / 56x75: neither side a multiple of 16 or 32, as 683 is not.
ODD_TEST_SCALE = '(224,56)'


def seg_opts(root, iters=4, test_scale='(128,64)'):
    return [
        *_loaders(root),
        'train_dataloader.batch_size=2',
        'train_dataloader.dataset.pipeline.2.scale=(128,64)',
        'train_dataloader.dataset.pipeline.3.crop_size=(64,64)',
        f'val_dataloader.dataset.pipeline.1.scale={test_scale}',
        f'test_dataloader.dataset.pipeline.1.scale={test_scale}',
        'model.data_preprocessor.size=(64,64)',
        'model.test_cfg.crop_size=(64,64)', 'model.test_cfg.stride=(43,43)',
        f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
        f'default_hooks.checkpoint.interval={iters}',
    ]


PLAIN_UPERNET = [
    *TINY_PLAIN, 'model.backbone.out_indices=[0,1,2,3]', 'model.neck.embed_dim=64',
    'model.decode_head.in_channels=[64,64,64,64]', 'model.decode_head.channels=32',
    'model.auxiliary_head.in_channels=64', 'model.auxiliary_head.channels=16',
]

# the pyramid configs name their arch by string: shrink to 'small' (the smallest released size)
PYRAMID_UPERNET = ['model.backbone.arch=small', 'model.backbone.init_cfg=None',
                   'model.decode_head.in_channels=[64,128,256,512]',
                   'model.decode_head.channels=64', 'model.auxiliary_head.in_channels=256',
                   'model.auxiliary_head.channels=32']

SEG_CONFIGS = {
    **{f'configs/visionllama/upernet_visionllama-pyramid-{a}_8xb2-160k_ade20k-512x512.py':
       PYRAMID_UPERNET for a in ('small', 'base', 'large')},
    'configs/visionllama/upernet_visionllama-base-p16_mae-800e-pre_8xb2-amp-160k_ade20k-512x512.py':
    PLAIN_UPERNET,
    'configs/visionllama/upernet_visionllama-large-p16_mae-800e-pre_8xb1-accum2-amp-160k_ade20k-512x512.py':
    PLAIN_UPERNET,
}


# ConvNeXt V2: the shipped arch names replaced by a 4-stage dict (one block per stage)
TINY_CONVNEXTV2 = ['model.backbone.arch._delete_=True', 'model.backbone.arch.depths=[1,1,1,1]',
                   'model.backbone.arch.channels=[8,16,24,32]', 'model.backbone.init_cfg=None']
CONVNEXTV2_UPERNET = [*TINY_CONVNEXTV2, 'model.decode_head.in_channels=[8,16,24,32]',
                      'model.decode_head.channels=16', 'model.auxiliary_head.in_channels=24',
                      'model.auxiliary_head.channels=8']
SEG_CONFIGS.update({
    f'configs/convnextv2/upernet_convnextv2-{a}_fcmae-ft-pre_8xb2-amp-160k_ade20k-512x512.py':
    CONVNEXTV2_UPERNET for a in ('tiny', 'base', 'large', 'huge')})

CLASSES = '(rectangle,disc,triangle)'


def det_opts(root, lsj=True, iters=4):
    """``lsj=True``: the ViTDet config's iteration-based LSJ pipeline (train: 3 = RandomResize,
    4 = RandomCrop, 6 = Pad; test: 1 = Resize, 2 = Pad), shrunk to 128x128."""
    inner = 'dataset'
    opts = [
        f'train_dataloader.{inner}.data_root={root}/',
        f'val_dataloader.dataset.data_root={root}/', f'test_dataloader.dataset.data_root={root}/',
        f'val_evaluator.ann_file={root}/annotations/instances_val2017.json',
        f'test_evaluator.ann_file={root}/annotations/instances_val2017.json',
        'train_dataloader.batch_size=2',
        'val_dataloader.dataset.indices=2', 'test_dataloader.dataset.indices=2',
        # the fixture's own classes, as a user declares a custom COCO-format dataset
        f'train_dataloader.{inner}.metainfo.classes={CLASSES}',
        f'val_dataloader.dataset.metainfo.classes={CLASSES}',
        f'test_dataloader.dataset.metainfo.classes={CLASSES}',
        'model.roi_head.bbox_head.num_classes=3', 'model.roi_head.mask_head.num_classes=3',
        # fewer proposals and sampled RoIs: RoIAlign dominates a CPU step
        'model.train_cfg.rpn_proposal.max_per_img=100', 'model.train_cfg.rcnn.sampler.num=64',
        'model.test_cfg.rpn.max_per_img=100', 'model.test_cfg.rcnn.max_per_img=20',
    ]
    for split in ('train', 'val', 'test'):
        opts += [f'{split}_dataloader.num_workers=0', f'{split}_dataloader.persistent_workers=False']
    if lsj:
        opts += [f'train_dataloader.{inner}.pipeline.3.scale=(128,128)',
                 f'train_dataloader.{inner}.pipeline.4.crop_size=(128,128)',
                 f'train_dataloader.{inner}.pipeline.6.size=(128,128)',
                 'model.data_preprocessor.batch_augments.0.size=(128,128)',
                 'val_dataloader.dataset.pipeline.1.scale=(128,128)',
                 'val_dataloader.dataset.pipeline.2.size=(128,128)',
                 'test_dataloader.dataset.pipeline.1.scale=(128,128)',
                 'test_dataloader.dataset.pipeline.2.size=(128,128)',
                 f'train_cfg.max_iters={iters}', f'train_cfg.val_interval={iters}',
                 f'default_hooks.checkpoint.interval={iters}']
    return opts


VITDET = [
    *TINY_PLAIN, 'model.backbone.out_indices=[3]', 'model.backbone.window_size=4',
    'model.backbone.global_attn_indexes=[1,3]', 'model.neck.backbone_channel=64',
    'model.neck.in_channels=[16,32,64,64]',
]

PYRAMID_MRCNN = [
    'model.backbone.arch=small', 'model.backbone.init_cfg=None',
    'model.neck.in_channels=[64,128,256,512]',
    'train_dataloader.dataset.pipeline.3.transforms.0.0.scales=[(128,128)]',
    'train_dataloader.dataset.pipeline.3.transforms.1.0.scales=[(128,128)]',
    'train_dataloader.dataset.pipeline.3.transforms.1.1.crop_size=(64,64)',
    'train_dataloader.dataset.pipeline.3.transforms.1.2.scales=[(128,128)]',
    'val_dataloader.dataset.pipeline.1.scale=(128,128)',
    'test_dataloader.dataset.pipeline.1.scale=(128,128)', 'train_cfg.max_epochs=1',
]

DET_CONFIGS = {
    'configs/visionllama/mask-rcnn_visionllama-pyramid-base_fpn_8xb2-ms-crop-3x_coco.py':
    (PYRAMID_MRCNN, False, 'epoch_1.pth'),
    'configs/visionllama/mask-rcnn_visionllama-base-p16_mae-800e-pre_vitdet_8xb4-accum2-lsj-36e_coco.py':
    (VITDET, True, 'iter_4.pth'),
}

# the LSJ pipeline of the ConvNeXt V2 configs: 2 = RandomResize, 3 = RandomCrop (no RepeatDataset)
CONVNEXTV2_MRCNN = [
    *TINY_CONVNEXTV2, 'model.neck.in_channels=[8,16,24,32]',
    'train_dataloader.dataset.pipeline.2.scale=(128,128)',
    'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
    'val_dataloader.dataset.pipeline.1.scale=(128,128)',
    'test_dataloader.dataset.pipeline.1.scale=(128,128)', 'train_cfg.max_epochs=1',
]
DET_CONFIGS.update({
    f'configs/convnextv2/mask-rcnn_convnextv2-{a}_fcmae-pre_fpn_8xb4-amp-lsj-3x_coco.py':
    (CONVNEXTV2_MRCNN, False, 'epoch_1.pth') for a in ('tiny', 'base', 'large', 'huge')})

# ViTamin: the shipped arch names replaced by a tiny dict (one MBConv block per stage, 2 blocks of
# width 32); three levels (strides 4 / 8 / 16) of widths 8 / 16 / 32. The ViTamin-B/L dense configs
# differ from S only in the arch, the head widths and layer decay; they build in
# tests/tools/test_vitamin_configs.py.
TINY_VITAMIN = ['model.backbone.arch._delete_=True', 'model.backbone.arch.stem_channels=8',
                'model.backbone.arch.channels=[8,16]', 'model.backbone.arch.depths=[1,1]',
                'model.backbone.arch.embed_dims=32', 'model.backbone.arch.num_layers=2',
                'model.backbone.arch.num_heads=2', 'model.backbone.init_cfg=None']
VITAMIN_UPERNET = [*TINY_VITAMIN, 'model.decode_head.in_channels=[8,16,32]',
                   'model.decode_head.channels=16', 'model.auxiliary_head.in_channels=32',
                   'model.auxiliary_head.channels=8']
SEG_CONFIGS['configs/vitamin/upernet_vitamin-small_clip-pre_8xb2-amp-160k_ade20k-512x512.py'] = \
    VITAMIN_UPERNET
# the same LSJ pipeline as the ConvNeXt V2 configs: 2 = RandomResize, 3 = RandomCrop
VITAMIN_MRCNN = [
    *TINY_VITAMIN, 'model.neck.in_channels=[8,16,32]',
    'train_dataloader.dataset.pipeline.2.scale=(128,128)',
    'train_dataloader.dataset.pipeline.3.crop_size=(128,128)',
    'val_dataloader.dataset.pipeline.1.scale=(128,128)',
    'test_dataloader.dataset.pipeline.1.scale=(128,128)', 'train_cfg.max_epochs=1',
]
DET_CONFIGS['configs/vitamin/mask-rcnn_vitamin-small_clip-pre_fpn_8xb4-amp-lsj-3x_coco.py'] = (
    VITAMIN_MRCNN, False, 'epoch_1.pth')

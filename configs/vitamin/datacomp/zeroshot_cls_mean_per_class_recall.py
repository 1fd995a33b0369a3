# DataComp zero-shot suite, zero-shot classification scored by the mean per-class recall.
# Written by `python tools/analysis_tools/datacomp_eval.py --write-configs` from the
# task table in visionllama_mm/evaluation/datacomp.py; edit the table, not this file.
# The model (and its test pipeline) is the released ViTamin-L CLIP at 224; the tool
# swaps in the model of the config it is given. Run every task with
#   python tools/analysis_tools/datacomp_eval.py MODEL_CONFIG CKPT --data-root DIR
# or this family's first task (Caltech-101) alone with
#   python tools/test.py configs/vitamin/datacomp/zeroshot_cls_mean_per_class_recall.py CKPT
_base_ = ['../clip_vitamin-large_zeroshot-cls_in1k.py']

datacomp_root = 'data/datacomp'
# every task of this family: DataComp key, name, dataset folder, metric
datacomp_tasks = [
    dict(key='vtab/caltech101',
         name='Caltech-101', folder='wds_vtab-caltech101_test',
         repo='djghosh/wds_vtab-caltech101_test',
         metric='mean_per_class_recall', group='vtab', in_average=True),
    dict(key='fgvc_aircraft',
         name='FGVC Aircraft', folder='wds_fgvc_aircraft_test',
         repo='djghosh/wds_fgvc_aircraft_test',
         metric='mean_per_class_recall', group='', in_average=True),
    dict(key='vtab/flowers',
         name='Oxford Flowers-102', folder='wds_vtab-flowers_test',
         repo='djghosh/wds_vtab-flowers_test',
         metric='mean_per_class_recall', group='vtab', in_average=True),
    dict(key='vtab/pets',
         name='Oxford-IIIT Pet', folder='wds_vtab-pets_test',
         repo='djghosh/wds_vtab-pets_test',
         metric='mean_per_class_recall', group='vtab', in_average=True),
]
datacomp_metric = 'mean_per_class_recall'  # the key of the number the average takes

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='WdsBenchmarkDataset',
        data_root=datacomp_root + '/wds_vtab-caltech101_test',
        task='vtab/caltech101',
        hub_repo='djghosh/wds_vtab-caltech101_test',
        with_metadata=False,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(_delete_=True, type='MeanPerClassRecall')
test_cfg = dict(type='ZeroShotTestLoop')

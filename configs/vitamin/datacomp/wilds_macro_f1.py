# DataComp zero-shot suite, zero-shot classification scored by the F1 score averaged over the
# classes present (WILDS iWildCam).
# Written by `python tools/analysis_tools/datacomp_eval.py --write-configs` from the
# task table in visionllama_mm/evaluation/datacomp.py; edit the table, not this file.
# The model (and its test pipeline) is the released ViTamin-L CLIP at 224; the tool
# swaps in the model of the config it is given. Run every task with
#   python tools/analysis_tools/datacomp_eval.py MODEL_CONFIG CKPT --data-root DIR
# or this family's first task (iWildCam) alone with
#   python tools/test.py configs/vitamin/datacomp/wilds_macro_f1.py CKPT
_base_ = ['../clip_vitamin-large_zeroshot-cls_in1k.py']

datacomp_root = 'data/datacomp'
# every task of this family: DataComp key, name, dataset folder, metric
datacomp_tasks = [
    dict(key='wilds/iwildcam',
         name='iWildCam', folder='wds_wilds-iwildcam_test',
         repo='djghosh/wds_wilds-iwildcam_test',
         metric='F1-macro_all', group='', in_average=True),
]
datacomp_metric = 'macro_f1'  # the key of the number the average takes

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='WdsBenchmarkDataset',
        data_root=datacomp_root + '/wds_wilds-iwildcam_test',
        task='wilds/iwildcam',
        hub_repo='djghosh/wds_wilds-iwildcam_test',
        with_metadata=False,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(_delete_=True, type='MacroF1')
test_cfg = dict(type='ZeroShotTestLoop')

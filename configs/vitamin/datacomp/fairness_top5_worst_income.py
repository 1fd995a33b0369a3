# DataComp zero-shot suite, zero-shot classification scored by the top-5 accuracy of the worst
# income group (Dollar Street; metadata column 0 is the income group).
# Written by `python tools/analysis_tools/datacomp_eval.py --write-configs` from the
# task table in visionllama_mm/evaluation/datacomp.py; edit the table, not this file.
# The model (and its test pipeline) is the released ViTamin-L CLIP at 224; the tool
# swaps in the model of the config it is given. Run every task with
#   python tools/analysis_tools/datacomp_eval.py MODEL_CONFIG CKPT --data-root DIR
# or this family's first task (Dollar Street) alone with
#   python tools/test.py configs/vitamin/datacomp/fairness_top5_worst_income.py CKPT
_base_ = ['../clip_vitamin-large_zeroshot-cls_in1k.py']

datacomp_root = 'data/datacomp'
# every task of this family: DataComp key, name, dataset folder, metric
datacomp_tasks = [
    dict(key='fairness/dollar_street',
         name='Dollar Street', folder='wds_dollar_street_test',
         repo='djghosh/wds_dollar_street_test',
         metric='acc_top5_wg', group='', in_average=True),
]
datacomp_metric = 'worst_group/top5'  # the key of the number the average takes

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='WdsBenchmarkDataset',
        data_root=datacomp_root + '/wds_dollar_street_test',
        task='fairness/dollar_street',
        hub_repo='djghosh/wds_dollar_street_test',
        with_metadata=True,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(_delete_=True, type='WorstGroupAccuracy', topk=5, column=0)
test_cfg = dict(type='ZeroShotTestLoop')

# DataComp zero-shot suite, WinoGAViL, each game (a cue word and 5-12 candidate images) scored by
# the Jaccard index of the images picked for the cue and the true associations; the score is the
# mean over the games with 10 or 12 candidates.
# Written by `python tools/analysis_tools/datacomp_eval.py --write-configs` from the
# task table in visionllama_mm/evaluation/datacomp.py; edit the table, not this file.
# The model (and its test pipeline) is the released ViTamin-L CLIP at 224; the tool
# swaps in the model of the config it is given. Run every task with
#   python tools/analysis_tools/datacomp_eval.py MODEL_CONFIG CKPT --data-root DIR
# or this family's first task (WinoGAViL) alone with
#   python tools/test.py configs/vitamin/datacomp/winogavil.py CKPT
_base_ = ['../clip_vitamin-large_zeroshot-cls_in1k.py']

datacomp_root = 'data/datacomp'
# every task of this family: DataComp key, name, dataset folder, metric
datacomp_tasks = [
    dict(key='misc/winogavil',
         name='WinoGAViL', folder='winogavil',
         repo='nlphuji/winogavil',
         metric='jaccard_score_10-12', group='retrieval', in_average=True),
]
datacomp_metric = 'winogavil/jaccard_score_10-12'  # the key of the number the average takes

test_dataloader = dict(
    batch_size=8,  # games (5-12 images each)
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        _delete_=True,
        type='WinoGAViLDataset',
        data_root=datacomp_root + '/winogavil',
        task='misc/winogavil',
        hub_repo='nlphuji/winogavil',
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(_delete_=True, type='WinoGAViLJaccard')
test_cfg = dict(type='WinoGAViLTestLoop')

# DataComp zero-shot suite, image-text retrieval scored by the mean of image-to-text and text-to-
# image recall@1.
# Written by `python tools/analysis_tools/datacomp_eval.py --write-configs` from the
# task table in visionllama_mm/evaluation/datacomp.py; edit the table, not this file.
# The model (and its test pipeline) is the released ViTamin-L CLIP at 224; the tool
# swaps in the model of the config it is given. Run every task with
#   python tools/analysis_tools/datacomp_eval.py MODEL_CONFIG CKPT --data-root DIR
# or this family's first task (Flickr) alone with
#   python tools/test.py configs/vitamin/datacomp/retrieval.py CKPT
_base_ = ['../clip_vitamin-large_zeroshot-cls_in1k.py']

datacomp_root = 'data/datacomp'
# every task of this family: DataComp key, name, dataset folder, metric
datacomp_tasks = [
    dict(key='retrieval/flickr_1k_test_image_text_retrieval',
         name='Flickr', folder='wds_flickr30k',
         repo='clip-benchmark/wds_flickr30k',
         metric='mean_recall@1', group='retrieval', in_average=True),
    dict(key='retrieval/mscoco_2014_5k_test_image_text_retrieval',
         name='MSCOCO', folder='wds_mscoco_captions',
         repo='clip-benchmark/wds_mscoco_captions',
         metric='mean_recall@1', group='retrieval', in_average=True),
]
datacomp_metric = 'retrieval/mean_recall@1'  # the key of the number the average takes

test_dataloader = dict(
    batch_size=64,
    num_workers=4,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        _delete_=True,
        type='WdsBenchmarkDataset',
        data_root=datacomp_root + '/wds_flickr30k',
        task='retrieval/flickr_1k_test_image_text_retrieval',
        hub_repo='clip-benchmark/wds_flickr30k',
        with_metadata=False,
        pipeline={{_base_.test_pipeline}}))
test_evaluator = dict(_delete_=True, type='ImageTextRecall', topk=(1, 5, 10))
test_cfg = dict(type='ImageTextRetrievalLoop')

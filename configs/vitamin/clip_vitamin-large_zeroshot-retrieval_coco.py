# Zero-shot image-text retrieval by the released ViTamin-L CLIP at 224 (12.8B samples) on the 5,000
# COCO test images of Karpathy's split and their 25,010 captions: recall@1/5/10 image -> text (an
# image scores a hit when any of its five captions is among its k best) and text -> image, ranked by
# the cosine similarity of the normalised embeddings, as DataComp's harness (clip_benchmark) does:
# raw captions tokenised to 77 tokens, the model's eval transform (short side resized to 224,
# bicubic, centre crop), fp32. mmpretrain's COCORetrieval, RetrievalTestLoop and RetrievalRecall.
#   python tools/model_converters/vitamin_official.py open_clip_pytorch_model.bin CONVERTED.pth
#   python tools/test.py configs/vitamin/clip_vitamin-large_zeroshot-retrieval_coco.py CONVERTED.pth
# Data: data/coco/val2014/*.jpg and data/coco/annotations/caption_karpathy_test2014.json, the COCO-
# format copy of Karpathy's test split that mmpretrain's BLIP retrieval configs read
# (download.openmmlab.com/mmclassification/datasets/coco_retrieval/caption_karpathy_test2014.json).
# The authors' README gives one retrieval number per model (60.3 for this one): DataComp's
# retrieval average (Flickr30k and MSCOCO, each the mean of the two recall@1, and WinoGAViL); it
# publishes no per-dataset recall.
_base_ = ['./clip_vitamin-large_zeroshot-cls_in1k.py']

image_size = 224
# MultiModalDataPreprocessor (same normalisation) passes caption-only batches, which the retrieval
# inferencers send
model = dict(data_preprocessor=dict(type='MultiModalDataPreprocessor'))
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=image_size, edge='short', backend='pillow',
         interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs', algorithm_keys=['text', 'gt_text_id', 'gt_image_id'],
         meta_keys=['image_id']),
]
test_dataloader = dict(
    dataset=dict(_delete_=True, type='COCORetrieval', data_root='data/coco',
                 ann_file='annotations/caption_karpathy_test2014.json', test_mode=True,
                 pipeline=test_pipeline))
test_evaluator = dict(type='RetrievalRecall', topk=(1, 5, 10))
test_cfg = dict(type='RetrievalTestLoop')
val_dataloader = test_dataloader
val_evaluator = test_evaluator
val_cfg = dict(type='RetrievalValLoop')

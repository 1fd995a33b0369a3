# Zero-shot image-text retrieval by the released ViTamin-XL CLIP at 384 (either release: 12.8B +
# 0.5B or 40B + 1B samples) on COCO's 5,000 Karpathy test images, evaluated as
# clip_vitamin-large_zeroshot-retrieval_coco.py evaluates ViTamin-L (recall@1/5/10 both ways,
# cosine similarity, fp32), at this model's eval transform: short side resized to 384 (bicubic),
# centre crop 384. The authors' README: 63.8 (12.8B + 0.5B) and 62.5 (40B + 1B) on DataComp's
# retrieval average; no per-dataset recall.
#   python tools/model_converters/vitamin_official.py open_clip_pytorch_model.bin CONVERTED.pth
#   python tools/test.py configs/vitamin/clip_vitamin-xlarge-384_zeroshot-retrieval_coco.py \
#       CONVERTED.pth
_base_ = ['./clip_vitamin-xlarge-384_zeroshot-cls_in1k.py']

image_size = 384
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

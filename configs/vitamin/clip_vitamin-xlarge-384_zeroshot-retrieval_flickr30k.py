# Zero-shot image-text retrieval by the released ViTamin-XL CLIP at 384 on Flickr30k's 1,000
# Karpathy test images, evaluated as clip_vitamin-xlarge-384_zeroshot-retrieval_coco.py evaluates
# COCO; data as in clip_vitamin-large_zeroshot-retrieval_flickr30k.py.
#   python tools/test.py configs/vitamin/clip_vitamin-xlarge-384_zeroshot-retrieval_flickr30k.py \
#       CONVERTED.pth
_base_ = ['./clip_vitamin-xlarge-384_zeroshot-retrieval_coco.py']

test_dataloader = dict(
    dataset=dict(_delete_=True, type='Flickr30kRetrieval', data_root='data/flickr30k',
                 ann_file='annotations/dataset_flickr30k.json', data_prefix='images',
                 split='test', test_mode=True, pipeline={{_base_.test_pipeline}}))
val_dataloader = test_dataloader

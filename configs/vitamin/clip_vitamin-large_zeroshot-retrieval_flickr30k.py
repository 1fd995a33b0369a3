# Zero-shot image-text retrieval by the released ViTamin-L CLIP at 224 (12.8B samples) on the 1,000
# Flickr30k test images of Karpathy's split and their 5,000 captions, evaluated as
# clip_vitamin-large_zeroshot-retrieval_coco.py evaluates COCO (recall@1/5/10 both ways, cosine
# similarity, the model's eval transform, fp32); mmpretrain's Flickr30kRetrieval.
#   python tools/test.py configs/vitamin/clip_vitamin-large_zeroshot-retrieval_flickr30k.py \
#       CONVERTED.pth
# Data: data/flickr30k/images/*.jpg and data/flickr30k/annotations/dataset_flickr30k.json
# (Karpathy's split file; its images with "split": "test").
_base_ = ['./clip_vitamin-large_zeroshot-retrieval_coco.py']

test_dataloader = dict(
    dataset=dict(_delete_=True, type='Flickr30kRetrieval', data_root='data/flickr30k',
                 ann_file='annotations/dataset_flickr30k.json', data_prefix='images',
                 split='test', test_mode=True, pipeline={{_base_.test_pipeline}}))
val_dataloader = test_dataloader

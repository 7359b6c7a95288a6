"""Constants shared by data, models, training and serving; imports nothing.

IMAGENET_MEAN, IMAGENET_STD: per-channel RGB statistics of ImageNet on the
[0, 1] pixel scale (pixels are divided by 255 first), the input
normalisation of ViViT and VideoMAE and the default of `data.mean` / `data.std`.
"""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

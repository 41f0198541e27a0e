"""Data: IDX reader, tensor data sets, batched augmentation."""

from .augment import apply_augment, draw_augment, normalize, random_crop, random_flip
from .datasets import (FASHION_MNIST_DIR, DataSplits, ImageSet, load_fashion_mnist, load_idx_folder,
                       split_train_val)
from .cifar import load_cifar
from .folder import load_image_folder
from .idx import DataFileError, read_idx

__all__ = ["read_idx", "DataFileError", "ImageSet", "DataSplits", "load_fashion_mnist", "load_idx_folder",
           "split_train_val", "load_cifar", "load_image_folder", "random_crop", "random_flip", "normalize", "draw_augment", "apply_augment", "FASHION_MNIST_DIR"]

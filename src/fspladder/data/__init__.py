"""Data: IDX, CIFAR and image-folder sources, checked splits, tensor data sets, batched augmentation."""

from .augment import apply_augment, draw_augment, normalize, random_crop, random_flip
from .cifar import load_cifar, read_cifar
from .datasets import ImageSet, split_train_val
from .folder import decode_image, index_image_folder, load_image_folder, read_image_folder
from .idx import DataFileError, read_idx
from .mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist, load_idx_folder, read_idx_folder
from .raw import RawData
from .sources import load_splits
from .splits import DataSplits, finish_splits

__all__ = ["read_idx", "DataFileError", "ImageSet", "DataSplits", "RawData", "load_fashion_mnist", "load_idx_folder",
           "read_idx_folder", "split_train_val", "load_cifar", "read_cifar", "load_image_folder", "read_image_folder",
           "index_image_folder", "decode_image", "finish_splits", "load_splits", "random_crop", "random_flip",
           "normalize", "draw_augment", "apply_augment", "FASHION_MNIST_DIR", "FASHION_MNIST_CLASSES"]

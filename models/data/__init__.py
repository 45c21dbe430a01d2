"""Matting data: procedural multi-person scenes, loaders for data on disk, mask-to-matte.

Importing this package is light: it pulls in numpy and OpenCV only; the torch dataset
wrappers live in :mod:`models.data.dataset` and pymatting is imported on first use.
"""

from models.data.descriptions import InstanceAttributes, describe_instances, measure_attributes
from models.data.layouts import HIM2KFolder, SingleInstanceFolder, open_folder, read_alpha, read_image
from models.data.mask_to_matte import mask_to_matte, mask_to_trimap, masks_to_mattes
from models.data.synthetic import Scene, SceneGenerator

__all__ = [
    "HIM2KFolder",
    "InstanceAttributes",
    "Scene",
    "SceneGenerator",
    "SingleInstanceFolder",
    "describe_instances",
    "mask_to_matte",
    "mask_to_trimap",
    "masks_to_mattes",
    "measure_attributes",
    "open_folder",
    "read_alpha",
    "read_image",
]

"""Data: the built-in ShapesWorld generator, real-format loaders, text corpora, tokenizers, transforms.

Everything here reads real on-disk formats (CIFAR-10 archives, JSONL/CSV manifests, COCO and
VQAv2 JSON, WebDataset shards, video files) and works offline; ShapesWorld is the embedded
default data set of every recipe.
"""

from mambajepa.data.cifar10 import CIFAR10, download_cifar10, restricted_loads
from mambajepa.data.export import FORMATS as EXPORT_FORMATS
from mambajepa.data.export import export_shapesworld
from mambajepa.data.image_text import COCOCaptions, ImageTextManifest, WebDatasetShards, expand_shards
from mambajepa.data.shapes_render import (
    ATTRIBUTES,
    CLASS10,
    CLASS10_NAMES,
    Scene,
    ShapesConfig,
    attribute_classes,
    render,
    sample_scene,
    scene_rng,
)
from mambajepa.data.shapes_text import ANSWERS, QUESTION_TYPES, WORDS, caption, class_prompts, question_answer
from mambajepa.data.skipping import BadItems, BadItemWarning
from mambajepa.data.synthetic import (
    ShapesCaptions,
    ShapesImages,
    ShapesStream,
    ShapesVideos,
    ShapesVL,
    ShapesVQA,
)
from mambajepa.data.text import TokenBlocks, read_documents, shapesworld_documents
from mambajepa.data.tokenizers import ByteTokenizer, HFTokenizer, TextTokenizer, load_tokenizer
from mambajepa.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    CenterCrop,
    Compose,
    Normalize,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    build_transform,
    load_image,
    to_tensor,
)
from mambajepa.data.video import VideoClips, read_video, write_video
from mambajepa.data.vqa import VQADataset, vqa_accuracy

__all__ = [
    "ANSWERS",
    "ATTRIBUTES",
    "CIFAR10",
    "CLASS10",
    "CLASS10_NAMES",
    "COCOCaptions",
    "EXPORT_FORMATS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "QUESTION_TYPES",
    "WORDS",
    "BadItemWarning",
    "BadItems",
    "ByteTokenizer",
    "CenterCrop",
    "Compose",
    "HFTokenizer",
    "ImageTextManifest",
    "Normalize",
    "RandomHorizontalFlip",
    "RandomResizedCrop",
    "Resize",
    "Scene",
    "ShapesCaptions",
    "ShapesConfig",
    "ShapesImages",
    "ShapesStream",
    "ShapesVL",
    "ShapesVQA",
    "ShapesVideos",
    "TextTokenizer",
    "TokenBlocks",
    "VQADataset",
    "VideoClips",
    "WebDatasetShards",
    "attribute_classes",
    "build_transform",
    "caption",
    "class_prompts",
    "download_cifar10",
    "expand_shards",
    "export_shapesworld",
    "load_image",
    "load_tokenizer",
    "question_answer",
    "read_documents",
    "read_video",
    "render",
    "restricted_loads",
    "sample_scene",
    "scene_rng",
    "shapesworld_documents",
    "to_tensor",
    "vqa_accuracy",
    "write_video",
]

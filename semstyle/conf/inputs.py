"""Every input file a config names, checked before torch or a method loads: the images to the end of their data,
DST's keypoint files parsed and paired against the images' sizes."""

from __future__ import annotations

from omegaconf import OmegaConf

from .checks import check_file, check_image, header_size, is_list
from .keypoint_files import check_keypoint_pairs, parse_correspondences

# The keys that name input files, in every method's vocabulary, and what a message calls them.
INPUT_IMAGES = {
    "content": "content image",
    "style": "style image",
    "content_map": "content map",
    "style_map": "style map",
}
INPUT_TEXT_FILES = {"content_keypoints": "keypoint file A", "style_keypoints": "keypoint file B"}


def check_input_files(cfg) -> None:
    """Every input file the config names can be read: one line before torch or a method loads. Images are checked
    to the end of their data (:func:`check_image`), and DST's keypoint files are parsed, their points checked
    against the images' sizes and paired up (:mod:`semstyle.conf.keypoint_files`); the method's loader still
    decodes the pixels and reads the points."""
    for key, what in INPUT_IMAGES.items():
        value = OmegaConf.select(cfg, key, default=None)
        for path in value if is_list(value) else [value]:
            if isinstance(path, str) and path.strip():
                check_image(path, what)
    for key, what in INPUT_TEXT_FILES.items():
        path = OmegaConf.select(cfg, key, default=None)
        if isinstance(path, str) and path.strip():
            check_file(path, what)
    # DST reads the files when keypoints=files, or =auto with files given (conf.dst has checked they come in pairs)
    if OmegaConf.select(cfg, "keypoints", default=None) in ("files", "auto") and cfg.content_keypoints:
        content, style = parse_correspondences(
            cfg.content_keypoints,
            cfg.style_keypoints,
            size_a=header_size(cfg.content, "content image"),
            size_b=header_size(cfg.style, "style image"),
        )[:2]
        check_keypoint_pairs(content, style, f"keypoint files {cfg.content_keypoints}, {cfg.style_keypoints}")

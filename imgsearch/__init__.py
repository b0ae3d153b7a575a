"""imgsearch: query-by-example image search over MySQL/MariaDB or SQLite."""
import os as _os

__version__ = "0.2.0"  # the one place: setup.cfg reads it, the API reports it

# OpenCV reads its decoded-pixel limit once, when cv2 is first imported, and then refuses
# larger images before allocating them: that is what stops a decompression bomb (a 300 kB
# PNG claiming 30,000 x 30,000 pixels). So it is set here, before any module imports cv2.
MAX_PIXELS = int(_os.environ.get("IMGSEARCH_MAX_PIXELS", 100_000_000))
_os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_PIXELS)

_LIBRARY = ("open", "Index", "Hit", "Built")  # imgsearch.library, imported when first used
__all__ = [*_LIBRARY, "ImgsearchError", "__version__"]


def __getattr__(name: str):
    # the library pulls in OpenCV and the stores: the command line's --help need not wait for them
    if name in _LIBRARY:
        from imgsearch import library

        return getattr(library, name)
    if name == "ImgsearchError":
        from imgsearch.errors import ImgsearchError

        return ImgsearchError
    raise AttributeError(f"module 'imgsearch' has no attribute {name!r}")

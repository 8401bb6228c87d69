"""ImagesPipeline: FilesPipeline for images, converted to RGB JPEG with Pillow, with
thumbnails, and too-small images refused. Paths are Scrapy's: full/<sha1>.jpg and
thumbs/<name>/<sha1>.jpg.

Pillow is an optional extra (pip install 'crawler[images]'): the master checks for it
before the crawl starts, and so does each worker when it joins.
"""
from __future__ import annotations

import hashlib
import io
from typing import Any

from ..errors import UsageError
from ..http.request import Request
from .files import DAY, FilesPipeline, MediaError, _scrapy_url


def _pillow() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise UsageError("ImagesPipeline needs Pillow: pip install 'crawler[images]' (or "
                         "pip install Pillow) on the master and on every worker host") from None
    return Image, ImageOps


class ImagesPipeline(FilesPipeline):
    """Scrapy's ImagesPipeline, with the downloads and conversions done by the workers."""

    URLS_FIELD, RESULT_FIELD = "image_urls", "images"
    STORE, EXPIRES = "IMAGES_STORE", "IMAGES_EXPIRES"

    def __init__(self, store_uri: str, settings: dict[str, Any], media: Any = None) -> None:
        self._image, self._ops = _pillow()
        super().__init__(store_uri, settings, media)
        self.expires = float(settings.get("IMAGES_EXPIRES", 90)) * DAY
        self.thumbs = {name: tuple(size) for name, size in
                       (settings.get("IMAGES_THUMBS") or {}).items()}
        self.min_width = int(settings.get("IMAGES_MIN_WIDTH", 0))
        self.min_height = int(settings.get("IMAGES_MIN_HEIGHT", 0))

    def file_path(self, request: Request, response: Any = None, info: Any = None, *,
                  item: Any = None) -> str:
        return f"full/{_sha1(request.url)}.jpg"

    def thumb_path(self, request: Request, thumb_id: str, response: Any = None,
                   info: Any = None, *, item: Any = None) -> str:
        return f"thumbs/{thumb_id}/{_sha1(request.url)}.jpg"

    def paths(self, request: Request, path: str, item: Any) -> dict[str, str]:
        paths = {"full": path}
        for name in self.thumbs:
            paths[f"thumb {name}"] = self.thumb_path(request, name, info=self.info, item=item)
        return paths

    # -- on the workers ---------------------------------------------------------------
    def media_downloaded(self, body: bytes, paths: dict[str, str]) -> tuple[dict[str, bytes], str]:
        try:
            image = self._ops.exif_transpose(self._image.open(io.BytesIO(body)))
        except Exception as exc:  # Pillow raises many kinds for a body it cannot read
            raise MediaError("image_invalid", f"not an image Pillow can read: {exc}") from None
        width, height = image.size
        if width < self.min_width or height < self.min_height:
            raise MediaError("image_too_small", f"image too small ({width}x{height} < "
                             f"{self.min_width}x{self.min_height})")
        full, data = self.convert_image(image)
        files = {paths["full"]: data}
        for name, size in self.thumbs.items():
            files[paths[f"thumb {name}"]] = self.convert_image(full, size)[1]
        return files, hashlib.md5(data).hexdigest()

    def convert_image(self, image: Any, size: tuple[int, int] | None = None) -> tuple[Any, bytes]:
        """The image as RGB, shrunk to fit `size` when given, and its JPEG bytes, by
        Scrapy's rules (so the bytes and checksums are Scrapy's too): a palette image (and
        an RGBA one still marked PNG or WebP) is laid over white, others converted; every
        image is encoded again, JPEGs included."""
        if image.mode == "P" or image.mode == "RGBA" and image.format in ("PNG", "WEBP"):
            rgba = image.convert("RGBA")
            white = self._image.new("RGBA", rgba.size, (255, 255, 255))
            white.paste(rgba, rgba)
            image = white.convert("RGB")
        elif image.mode != "RGB":
            image = image.convert("RGB")
        if size:
            image = image.copy()
            image.thumbnail(size, self._image.Resampling.LANCZOS)
        out = io.BytesIO()
        image.save(out, "JPEG")
        return image, out.getvalue()


def _sha1(url: str) -> str:
    return hashlib.sha1(_scrapy_url(url).encode()).hexdigest()

"""Reading face images from a folder, a zip or an S3 prefix, and refusing anything that is not a safe image."""

from __future__ import annotations

import io
import warnings
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from django.conf import settings
from PIL import Image, UnidentifiedImageError

from annotation_web.labeling.errors import LabelingError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
# The only decoders Pillow may use on an upload: whatever the bytes claim to be, EPS/PS (Ghostscript), TIFF,
# BMP and the rest are never opened.
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP")
MAX_ZIP_TOTAL_BYTES = 2 * 1024**3


class ImportRejected(LabelingError, ValueError):
    """One file that cannot be imported; the import goes on with the others and reports it."""

    code = "invalid_image"


class SourceError(LabelingError, ValueError):
    """The source as a whole cannot be read (missing folder, not a zip, bad S3 address)."""


@dataclass(frozen=True)
class SourceFile:
    name: str
    data: bytes
    error: str = ""


def _looks_like_image(name: str) -> bool:
    path = PurePosixPath(name)
    return path.suffix.lower() in IMAGE_SUFFIXES and not any(
        p.startswith(".") or p == "__MACOSX" for p in path.parts
    )


def _safe_member_name(name: str) -> str:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ImportRejected(f"{name}: unsafe path in archive")
    return str(path)


def _open(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)


# What Pillow raises on a file that is not an image it may open (bad header, truncated data, a bomb).
UNREADABLE_IMAGE_ERRORS = (
    UnidentifiedImageError,
    OSError,
    SyntaxError,
    ValueError,
    Image.DecompressionBombError,
    Warning,
)


def probe_image(name: str, data: bytes) -> tuple[int, int]:
    """Size and format checks from the header alone (no pixel is decoded): what the web process may do."""
    if len(data) > settings.IMPORT_MAX_IMAGE_BYTES:
        raise ImportRejected(
            f"{name}: {len(data)} bytes is over the {settings.IMPORT_MAX_IMAGE_BYTES}-byte limit"
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _open(data) as probe:
                width, height = probe.size
    except UNREADABLE_IMAGE_ERRORS as exc:
        raise ImportRejected(
            f"{name}: not a readable image; PNG, JPEG or WebP only ({exc.__class__.__name__})"
        ) from exc
    if width * height > settings.IMPORT_MAX_IMAGE_PIXELS:
        raise ImportRejected(
            f"{name}: {width}x{height} pixels is over the {settings.IMPORT_MAX_IMAGE_PIXELS}-pixel limit"
        )
    return width, height


def validate_image(name: str, data: bytes) -> Image.Image:
    """The decoded image (in the worker): header checks first, so an oversized one is never decoded."""
    probe_image(name, data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            probe = _open(data)
            probe.verify()
            image = _open(data)
            image.load()
    except ImportRejected:
        raise
    except UNREADABLE_IMAGE_ERRORS as exc:
        raise ImportRejected(f"{name}: not a readable image ({exc.__class__.__name__})") from exc
    if min(image.size) < settings.IMPORT_MIN_IMAGE_SIDE:
        raise ImportRejected(
            f"{name}: {image.size[0]}x{image.size[1]} is smaller than {settings.IMPORT_MIN_IMAGE_SIDE} px"
        )
    return image.convert("RGB")


def iter_folder(folder: Path) -> Iterator[SourceFile]:
    if not folder.is_dir():
        raise SourceError(f"{folder} is not a folder")
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and _looks_like_image(relative):
            yield SourceFile(relative, path.read_bytes())


def iter_zip(file: Path | io.BytesIO) -> Iterator[SourceFile]:
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, OSError) as exc:
        raise SourceError(f"not a zip archive ({exc})") from exc
    total = 0
    with archive:
        for member in archive.infolist():
            if member.is_dir():
                continue
            try:
                name = _safe_member_name(member.filename)
            except ImportRejected as exc:
                yield SourceFile(member.filename, b"", error=str(exc))
                continue
            if not _looks_like_image(name):
                continue
            if member.file_size > settings.IMPORT_MAX_IMAGE_BYTES:
                yield SourceFile(name, b"", error=f"{name}: {member.file_size} bytes is over the limit")
                continue
            total += member.file_size
            if total > MAX_ZIP_TOTAL_BYTES:
                raise SourceError("archive expands to more than 2 GiB")
            # A corrupt member (bad CRC, a size header that lies, a broken deflate stream) fails that member
            # only: it is reported and the members after it still import.
            try:
                with archive.open(member) as handle:
                    data = handle.read(settings.IMPORT_MAX_IMAGE_BYTES + 1)
                if len(data) > settings.IMPORT_MAX_IMAGE_BYTES:
                    raise ImportRejected(
                        f"{name}: expands past the {settings.IMPORT_MAX_IMAGE_BYTES}-byte limit"
                    )
            except ImportRejected as exc:
                yield SourceFile(name, b"", error=str(exc))
                continue
            except (
                zipfile.BadZipFile,
                zlib.error,
                OSError,
                EOFError,
                NotImplementedError,
                RuntimeError,
            ) as exc:
                yield SourceFile(name, b"", error=f"{name}: corrupt archive member ({exc})")
                continue
            yield SourceFile(name, data)


def iter_s3_prefix(url: str) -> Iterator[SourceFile]:
    from annotation_web.storage import S3Storage

    without_scheme = url.removeprefix("s3://")
    bucket, _, prefix = without_scheme.partition("/")
    if not bucket:
        raise SourceError(f"{url!r} is not an s3://bucket/prefix address")
    source = S3Storage(
        bucket=bucket,
        endpoint_url=settings.S3_ENDPOINT_URL,
        access_key=settings.S3_ACCESS_KEY,
        secret_key=settings.S3_SECRET_KEY,
        region=settings.S3_REGION,
    )
    limit = settings.IMPORT_MAX_S3_OBJECT_BYTES
    for key in source.list(prefix):
        if not _looks_like_image(key):
            continue
        # The size from a HEAD first, then at most `limit` bytes read (an object may grow in between).
        try:
            size = int(source.client.head_object(Bucket=bucket, Key=key)["ContentLength"])
        except Exception as exc:  # botocore's errors: a vanished or unreadable object fails that object only
            yield SourceFile(key, b"", error=f"{key}: cannot be read ({exc.__class__.__name__})")
            continue
        if size > limit:
            yield SourceFile(key, b"", error=f"{key}: {size} bytes is over the {limit}-byte limit")
            continue
        body = source.client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{limit}")["Body"]
        try:
            data = body.read(limit + 1)
        finally:
            body.close()
        if len(data) > limit:
            yield SourceFile(key, b"", error=f"{key}: over the {limit}-byte limit")
            continue
        yield SourceFile(key, data)


def iter_source(source: str) -> Iterator[SourceFile]:
    """A folder, a .zip file or an s3://bucket/prefix."""
    if source.startswith("s3://"):
        return iter_s3_prefix(source)
    path = Path(source)
    if path.is_dir():
        return iter_folder(path)
    if path.is_file():
        return iter_zip(path)
    raise SourceError(f"{source} is neither a folder, a zip file nor an s3:// prefix")


def count_source(source: str) -> int | None:
    path = Path(source)
    if path.is_dir():
        return sum(
            1 for p in path.rglob("*") if p.is_file() and _looks_like_image(p.relative_to(path).as_posix())
        )
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as archive:
                return sum(1 for m in archive.infolist() if not m.is_dir() and _looks_like_image(m.filename))
        except zipfile.BadZipFile:
            return None
    return None

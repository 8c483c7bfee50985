"""Reading a multipart upload as it streams in, straight into the server's private folder.

The size limit is enforced chunk by chunk: a declared Content-Length over the limit is refused
before any byte is read, and a body that grows past it (chunked uploads, a lying header) is cut
off as soon as it does. Nothing is spooled anywhere else (no system temp files, no whole body
in memory); form fields are kept in memory up to a small bound.
"""

import os
import tempfile
from urllib.parse import parse_qs
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from ..data.decode import DEFAULT_INDEX_CACHE

FIELD_LIMIT = 64 * 1024  # bytes of one text field (class names)
MAX_PARTS = 16
FORM_ALLOWANCE = 1024 * 1024  # headers and text fields on top of the file itself


class ServeError(Exception):
    """An HTTP error with a one-line message for the client."""

    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


@dataclass
class Upload:
    fields: dict[str, str] = field(default_factory=dict)
    path: str | None = None  # the uploaded file in the private folder, if a file part was sent
    filename: str = ""  # as the client named it, for display only
    size: int = 0

    def remove(self) -> None:
        if self.path and os.path.exists(self.path):
            DEFAULT_INDEX_CACHE.forget(self.path)  # the keyframe index predict cached for it
            os.unlink(self.path)
        self.path = None


def size_text(size: int) -> str:
    return f"{size / 2**20:.1f} MiB" if size >= 2**20 else f"{size / 1024:.0f} KiB"


def too_large(limit: int) -> ServeError:
    return ServeError(413, f"the upload is larger than the {size_text(limit)} limit "
                           "(the server's --max-upload-mb sets it)")


class _FormReader:
    """python-multipart callbacks that route the file part to disk and text parts to memory."""

    def __init__(self, directory: str, file_field: str, max_file_bytes: int):
        self.directory, self.file_field, self.max_file_bytes = directory, file_field, max_file_bytes
        self.upload = Upload()
        self.error: ServeError | None = None
        self.parts = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition: dict = {}
        self._file = None
        self._text: bytearray | None = None
        self._name = ""

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self.part_begin,
            "on_header_field": lambda data, start, end: self._add("_header_name", data[start:end]),
            "on_header_value": lambda data, start, end: self._add("_header_value", data[start:end]),
            "on_header_end": self.header_end,
            "on_headers_finished": self.headers_finished,
            "on_part_data": self.part_data,
            "on_part_end": self.part_end,
        }

    def _add(self, attribute: str, data: bytes) -> None:
        setattr(self, attribute, getattr(self, attribute) + data)

    def _fail(self, error: ServeError) -> None:
        if self.error is None:
            self.error = error

    def part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            self._fail(ServeError(400, f"too many form fields (at most {MAX_PARTS})"))
        self._disposition, self._name, self._text = {}, "", None

    def header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            _, self._disposition = parse_options_header(self._header_value)
        self._header_name = self._header_value = b""

    def headers_finished(self) -> None:
        self._name = self._disposition.get(b"name", b"").decode("utf-8", "replace")
        is_file = b"filename" in self._disposition
        if self.error:
            return
        if is_file and self._name == self.file_field:
            if self.upload.path is not None:
                self._fail(ServeError(400, f"send one file in the {self.file_field!r} field, not several"))
                return
            fd, self.upload.path = tempfile.mkstemp(prefix="upload-", dir=self.directory)
            self._file = os.fdopen(fd, "wb")
            name = self._disposition[b"filename"].decode("utf-8", "replace")
            self.upload.filename = os.path.basename(name.replace("\\", "/"))[:200]
        elif not is_file:
            self._text = bytearray()
        # Other file fields are read past and dropped.

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self.error:
            return
        if self._file is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_file_bytes:
                self._fail(too_large(self.max_file_bytes))
                return
            self._file.write(data[start:end])
        elif self._text is not None:
            if len(self._text) + end - start > FIELD_LIMIT:
                self._fail(ServeError(413, f"form field {self._name!r} is longer than {FIELD_LIMIT // 1024} KiB"))
                return
            self._text += data[start:end]

    def part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._text is not None and self._name:
            self.upload.fields[self._name] = self._text.decode("utf-8", "replace")
            self._text = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


async def _receive_fields(request) -> Upload:
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_ALLOWANCE:
            raise ServeError(413, f"form fields are longer than {FORM_ALLOWANCE // 1024} KiB")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return Upload(fields={name: values[-1] for name, values in fields.items()})


async def receive_form(request, directory: str, max_file_bytes: int, file_field: str = "video") -> Upload:
    """Parse a multipart/form-data request body; the file in `file_field` lands in `directory`.

    Raises ServeError: 400 for a body that is not a well-formed form, 413 past the size limit.
    The caller removes the file (`Upload.remove()`) when done; on an error it is already gone.
    """
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type == b"application/x-www-form-urlencoded":
        return await _receive_fields(request)  # text fields only: a bundled sample, class names
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise ServeError(400, f"send a multipart/form-data form with the video in a {file_field!r} file field "
                              "(curl -F video=@clip.mp4)")
    body_limit = max_file_bytes + FORM_ALLOWANCE
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > body_limit:
        raise too_large(max_file_bytes)
    reader = _FormReader(directory, file_field, max_file_bytes)
    parser = MultipartParser(options[b"boundary"], reader.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if received > body_limit:
                raise too_large(max_file_bytes)
            parser.write(chunk)
            if reader.error:
                raise reader.error
        parser.finalize()
        if reader.error:
            raise reader.error
    except MultipartParseError as error:
        reader.close()
        reader.upload.remove()
        raise ServeError(400, f"malformed multipart form ({error})") from None
    except BaseException:
        reader.close()
        reader.upload.remove()
        raise
    reader.close()
    return reader.upload

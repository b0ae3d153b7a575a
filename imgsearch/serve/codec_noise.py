"""The image libraries' own complaints kept out of the service's log.

libjpeg and libpng (inside OpenCV) print a warning to file descriptor 2 for every damaged
file they read ("Corrupt JPEG data: 14 extraneous bytes before marker 0xd9", "libpng
error: IDAT: CRC error"): a few hundred hostile uploads bury the log. No API turns them
off, so in `serve` descriptor 2 becomes a pipe that a thread copies to the real stderr,
leaving out those lines; Python's own stderr (logging, uvicorn) writes to the real
stderr directly. The service logs one line of its own per refused upload instead."""
from __future__ import annotations

import io
import os
import re
import sys
import threading

import cv2

# libjpeg's JWRN_* and libpng's messages (jerror.h, png.c), as the libraries print them.
CODEC_LINE = re.compile(
    rb"^(Corrupt JPEG data|Premature end of JPEG file|Invalid SOS parameters|Inconsistent progression sequence"
    rb"|Unknown Adobe color transform|Application transferred too|Warning: (unknown JFIF|thumbnail image size)"
    rb"|libpng (error|warning)|JPEG datastream contains no image)"
)


def keep_codec_messages_out_of_the_log() -> None:
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_FATAL)  # OpenCV's "[ERROR:0@...] imdecode_"
    sys.stderr.flush()
    real = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)
    sys.stderr = io.TextIOWrapper(io.FileIO(real, "w", closefd=False), line_buffering=True,
                                  encoding=sys.stderr.encoding, errors="backslashreplace")
    threading.Thread(target=_copy_other_lines, args=(read_end, real), daemon=True, name="codec-noise").start()


def _copy_other_lines(read_end: int, real: int) -> None:
    with os.fdopen(read_end, "rb") as pipe:
        for line in pipe:
            if not CODEC_LINE.match(line):
                os.write(real, line)

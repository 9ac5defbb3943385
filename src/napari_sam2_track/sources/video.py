"""Frame-accurate random access to video files with PyAV.

At open the video stream is demuxed once (no decoding) to build a packet index of
``(pts, is_keyframe)`` sorted by pts; frame ``t`` is the frame with the t-th smallest pts.
Reading the frame after the last decoded one continues decoding; any other frame seeks to the
keyframe at or before it and decodes forward until its exact pts.
"""

from __future__ import annotations

import bisect
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import SourceError
from ._base import FrameSource, IntensityWindow

__all__ = ["VideoSource", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v")

_OVERSHOOT = object()  # sentinel: first frame decoded after a seek is past the target
_MAX_KEYFRAME_RETRIES = 3  # seek back this many keyframes before decoding from the start


def _reason(exc: BaseException) -> str:
    """One-line reason of a PyAV/FFmpeg error (without errno and file name)."""
    text = getattr(exc, "strerror", None) or str(exc)
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _parse_duration_tag(text: str) -> float | None:
    """Seconds of a Matroska ``DURATION`` tag such as ``00:01:02.500000000``."""
    try:
        h, m, sec = text.strip().split(":")
        return int(h) * 3600 + int(m) * 60 + float(sec)
    except (ValueError, AttributeError):
        return None


def _missing_data(container: Any, stream: Any, packets: int,
                  last_end: tuple[int, bool] | None, fps: float | None) -> str | None:
    """Why the demuxed packets fall short of what the file's header declares, or None.

    The header's frame count (MP4, MOV, AVI) or duration (Matroska/WebM tags, or the container
    duration of a video-only file) is compared with what could be demuxed; a file cut short
    keeps its header and loses the end of its data.
    """
    if stream.frames and stream.frames > 0:
        if packets < stream.frames:
            return f"the header lists {stream.frames} frames but the data holds {packets}"
        return None
    if last_end is None or stream.time_base is None:
        return None
    declared = _parse_duration_tag(stream.metadata.get("DURATION", ""))
    if declared is None and len(container.streams) == 1 and container.duration:
        declared = container.duration / 1_000_000
    if declared is None:
        return None
    end, duration_known = last_end
    frame_time = 1.0 / fps if fps else 0.04
    found = float((end - (stream.start_time or 0)) * stream.time_base)
    if not duration_known:
        found += frame_time
    if found < declared - max(0.5 * frame_time, 0.01):
        return f"the header declares {declared:.2f} s but the data ends at {found:.2f} s"
    return None


class VideoSource(FrameSource):
    """RGB uint8 frames of the first video stream of a file, decoded on demand with PyAV.

    ``cache_frames`` decoded frames are kept in an LRU cache (read-only arrays). Decoding is
    serialised with a lock, so a prefetch thread and the UI may read concurrently.
    """

    kind = "video"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        channel: int | None = None,
        window: IntensityWindow | tuple[float, float] | None = None,
        cache_frames: int = 16,
    ) -> None:
        import av
        from av.video.reformatter import VideoReformatter

        path = os.fspath(path)
        self._av = av
        # one conversion context for all frames (each frame's own costs milliseconds to set up)
        self._reformatter = VideoReformatter()
        self._container: Any = None
        self._decoder: Any = None
        self._next_t: int | None = None  # frame the running decoder yields next
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = max(0, int(cache_frames))
        if os.path.isdir(path):
            raise self._open_error(path, "it is a directory, not a file")
        try:
            empty = os.path.getsize(path) == 0
        except OSError as exc:
            raise self._open_error(path, exc.strerror or _reason(exc)) from None
        if empty:
            raise SourceError(f"video {path} is an empty file; copy or export it again")
        try:
            container = av.open(path)
        except Exception as exc:
            raise self._open_error(path, _reason(exc)) from exc
        try:
            if not container.streams.video:
                raise self._open_error(path, "no video stream")
            stream = container.streams.video[0]
            entries: dict[int, bool] = {}
            packets = 0
            last_end = None  # (end of the last frame in time-base units, its duration known)
            demux_error = None
            try:
                for packet in container.demux(stream):
                    pts = packet.pts if packet.pts is not None else packet.dts
                    if pts is None:
                        continue
                    packets += 1
                    if last_end is None or pts + (packet.duration or 0) > last_end[0]:
                        last_end = (pts + (packet.duration or 0), bool(packet.duration))
                    if packet.size == 0 or packet.is_discard:
                        continue
                    entries[pts] = entries.get(pts, False) or bool(packet.is_keyframe)
            except Exception as exc:  # truncated/corrupt
                demux_error = _reason(exc)
            if not entries:
                raise self._open_error(path, demux_error or "no video frames")
            if demux_error is not None:
                raise self._truncated_error(path, f"{demux_error} after {len(entries)} frames")
            self._pts = sorted(entries)
            self._pts_index = {p: i for i, p in enumerate(self._pts)}
            self._keyframes = [i for i, p in enumerate(self._pts) if entries[p]]
            self.fps = float(stream.average_rate) if stream.average_rate else None
            self.codec = stream.codec_context.name
            width, height = stream.codec_context.width, stream.codec_context.height
            missing = _missing_data(container, stream, packets, last_end, self.fps)
            if missing is not None:
                raise self._truncated_error(path, missing)
        except SourceError:
            container.close()
            raise
        except Exception as exc:
            container.close()
            raise self._open_error(path, _reason(exc)) from exc
        container.close()
        if not (width and height):
            raise self._open_error(path, "unknown frame size")
        super().__init__(
            path=path,
            num_frames=len(self._pts),
            height=height,
            width=width,
            channels=3,
            dtype=np.uint8,
        )
        try:
            # A file cut inside its last frames is caught here, not halfway through a run;
            # the frames decoded on the way are not converted (the cache is emptied anyway).
            cache_frames, self._cache_frames = self._cache_frames, 0
            try:
                for t in sorted({0, self.num_frames - 1}):
                    self.read(t)
            finally:
                self._cache_frames = cache_frames
            self._drop_decoder()
            self._cache.clear()
            self._configure(channel, window)
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _truncated_error(path: str, reason: str) -> SourceError:
        return SourceError(
            f"video {path} is truncated or damaged ({reason}); copy it again, or keep the "
            "frames that remain by re-encoding it (e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4)"
        )

    @staticmethod
    def _open_error(path: str, reason: str) -> SourceError:
        return SourceError(
            f"cannot read video {path}: {reason}; re-encode it (e.g. ffmpeg -i in.mp4 -c:v "
            "libx264 out.mp4) or convert to an image folder"
        )

    def _corrupt(self, t: int, reason: str) -> SourceError:
        return SourceError(
            f"video {self.path} is truncated or corrupt at frame {t} ({reason}); re-encode it "
            "(e.g. ffmpeg -i in.mp4 -c:v libx264 out.mp4) or convert to an image folder"
        )

    # -- decoding ---------------------------------------------------------------------------

    def _stream(self) -> Any:
        if self._container is None:
            try:
                self._container = self._av.open(self.path)
            except Exception as exc:
                raise self._open_error(self.path, _reason(exc)) from exc
            stream = self._container.streams.video[0]
            stream.thread_type = "AUTO"
        return self._container.streams.video[0]

    def _restart(self) -> None:
        """Reopen the file and decode from its beginning (always frame-accurate)."""
        self._drop_decoder()
        if self._container is not None:
            self._container.close()
            self._container = None
        stream = self._stream()
        self._decoder = self._container.decode(stream)

    def _seek(self, t_key: int) -> None:
        stream = self._stream()
        self._drop_decoder()
        self._container.seek(
            self._pts[t_key], stream=stream, backward=True, any_frame=False
        )
        self._decoder = self._container.decode(stream)

    def _drop_decoder(self) -> None:
        self._decoder = None
        self._next_t = None

    def _remember(self, t: int, arr: np.ndarray) -> np.ndarray:
        arr.flags.writeable = False
        if self._cache_frames:
            self._cache[t] = arr
            self._cache.move_to_end(t)
            while len(self._cache) > self._cache_frames:
                self._cache.popitem(last=False)
        return arr

    def _decode_until(self, t: int, after_seek: bool) -> Any:
        """Decode forward to frame ``t``; returns the array or ``_OVERSHOOT``."""
        target = self._pts[t]
        first_keep = t - self._cache_frames + 1  # frames on the way that end up cached
        first = after_seek
        while True:
            try:
                frame = next(self._decoder)
            except StopIteration:
                self._drop_decoder()
                raise self._corrupt(t, "the decoder produced no more frames") from None
            except Exception as exc:
                self._drop_decoder()
                raise self._corrupt(t, _reason(exc)) from exc
            pts = frame.pts
            i = self._pts_index.get(pts) if pts is not None else None
            if i is None:
                continue
            if pts > target:
                self._drop_decoder()
                if first:
                    return _OVERSHOOT
                raise self._corrupt(t, "frame could not be decoded")
            first = False
            self._next_t = i + 1
            if i == t:
                return self._remember(t, self._rgb(frame))
            if i >= first_keep and i not in self._cache:
                self._remember(i, self._rgb(frame))

    def _rgb(self, frame: Any) -> np.ndarray:
        return self._reformatter.reformat(frame, format="rgb24").to_ndarray()

    def _seek_and_decode(self, t: int) -> np.ndarray:
        pos = bisect.bisect_right(self._keyframes, t) - 1
        for k in range(pos, max(pos - _MAX_KEYFRAME_RETRIES, -1), -1):
            t_key = self._keyframes[k]
            if t_key == 0:
                break
            try:
                self._seek(t_key)
                result = self._decode_until(t, after_seek=True)
            except SourceError:
                break  # retry once from the very beginning below
            if result is not _OVERSHOOT:
                return result
        self._restart()
        result = self._decode_until(t, after_seek=False)
        assert result is not _OVERSHOOT
        return result

    def _read(self, t: int) -> np.ndarray:
        cached = self._cache.get(t)
        if cached is not None:
            self._cache.move_to_end(t)
            return cached
        if self._decoder is not None and self._next_t == t:  # sequential fast path
            try:
                result = self._decode_until(t, after_seek=True)
            except SourceError:
                result = _OVERSHOOT
            if result is not _OVERSHOOT:
                return result
        return self._seek_and_decode(t)

    # -- misc -------------------------------------------------------------------------------

    def _extra_description(self) -> dict[str, Any]:
        return {"fps": self.fps, "codec": self.codec}

    def _close(self) -> None:
        self._drop_decoder()
        self._cache.clear()
        if self._container is not None:
            self._container.close()
            self._container = None

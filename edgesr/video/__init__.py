"""Video upscaling through PyAV (FFmpeg): decode, upscale in batches, encode in resumable segments, remux.

PyAV is an optional dependency (`pip install 'edgesr[video]'`); it is imported only when a video is used.
"""
from edgesr.video.pipeline import VideoOptions, VideoReport, upscale_video
from edgesr.video.probe import VIDEO_EXTENSIONS, VideoInfo, probe_video

__all__ = ["VIDEO_EXTENSIONS", "VideoInfo", "VideoOptions", "VideoReport", "probe_video", "upscale_video"]

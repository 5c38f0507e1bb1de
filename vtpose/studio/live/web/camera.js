// Camera and video-file input, and the frame grabber that downscales and JPEG-encodes what is sent.

/** Start the camera in `video`; resolves to the stream's frame rate (frames per second). */
export async function openCamera(video) {
  stopSource(video);
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: 1280 }, height: { ideal: 720 } },
    audio: false,
  });
  video.srcObject = stream;
  await video.play();
  const settings = stream.getVideoTracks()[0].getSettings();
  return settings.frameRate || 30;
}

/** Play a video file (looping, muted) in `video` instead of the camera. */
export async function openFile(video, file) {
  stopSource(video);
  video.srcObject = null;
  video.src = URL.createObjectURL(file);
  video.loop = true;
  await video.play();
  return 30;
}

export function stopSource(video) {
  if (video.srcObject) for (const track of video.srcObject.getTracks()) track.stop();
  if (video.src && video.src.startsWith("blob:")) URL.revokeObjectURL(video.src);
}

/**
 * Calls `onFrame(captureMs)` for each new video frame (requestVideoFrameCallback), with the time the frame
 * was captured (camera) or presented (file) on the performance.now() clock.
 */
export function everyFrame(video, onFrame) {
  const step = (now, metadata) => {
    const captured = metadata.captureTime ?? metadata.presentationTime ?? now;
    onFrame(Math.min(captured, performance.now()));
    video.requestVideoFrameCallback(step);
  };
  video.requestVideoFrameCallback(step);
}

/** Downscales the video's current frame so its long side is `side` pixels and encodes it as JPEG. */
export class FrameGrabber {
  constructor(video, side, quality) {
    this.video = video;
    this.side = side;
    this.quality = quality;
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { alpha: false });
  }

  /** {blob, width, height, drawMs, encodeMs}, or null before the video has a frame. */
  async grab() {
    const { videoWidth: w, videoHeight: h } = this.video;
    if (!w || !h) return null;
    const scale = Math.min(1, this.side / Math.max(w, h));
    const width = Math.round(w * scale);
    const height = Math.round(h * scale);
    if (this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas.width = width;
      this.canvas.height = height;
    }
    const t0 = performance.now();
    this.ctx.drawImage(this.video, 0, 0, width, height);
    const t1 = performance.now();
    const blob = await new Promise((resolve) => this.canvas.toBlob(resolve, "image/jpeg", this.quality));
    return { blob, width, height, drawMs: t1 - t0, encodeMs: performance.now() - t1 };
  }
}

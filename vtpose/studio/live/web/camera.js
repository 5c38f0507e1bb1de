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

/**
 * Downscales the video's current frame so its long side is `side` pixels and encodes it as JPEG: in a worker
 * (grab_worker.js) where the browser has VideoFrame and OffscreenCanvas, else, or once the worker fails, on the
 * page's canvas (whose toBlob waits for the page's main thread to be idle).
 */
export class FrameGrabber {
  /**
   * @param {HTMLVideoElement} video the camera or video file
   * @param {number} side the long side sent (config.send_side)
   * @param {number} quality JPEG quality, 0-1
   * @param {(message: string) => void} onFallback told once why frames are encoded on the page after all
   */
  constructor(video, side, quality, onFallback = () => {}) {
    this.video = video;
    this.side = side;
    this.quality = quality;
    this.onFallback = onFallback;
    this.canvas = document.createElement("canvas");
    this.ctx = this.canvas.getContext("2d", { alpha: false });
    this.worker = null;
    this.replies = []; // resolvers of the worker's answers, in order
    this.workerFrames = 0; // frames the worker encoded
    if (typeof VideoFrame === "function" && typeof OffscreenCanvas === "function") {
      this.worker = new Worker(new URL("./grab_worker.js", import.meta.url), { type: "module" });
      this.worker.onmessage = ({ data }) => this.replies.shift()?.(data);
      this.worker.onerror = (event) => this.fallBack(event.message || "the worker did not load");
    }
  }

  /** Encode on the page from now on; frames awaited from the worker are answered with `reason`. */
  fallBack(reason) {
    if (!this.worker) return;
    this.worker.terminate();
    this.worker = null;
    for (const resolve of this.replies.splice(0)) resolve({ error: reason });
    this.onFallback(`camera frames are encoded on the page (${reason}): 3D may draw fewer frames.`);
  }

  /** {blob, width, height, drawMs, encodeMs}, or null before the video has a frame. */
  async grab() {
    const { videoWidth: w, videoHeight: h } = this.video;
    if (!w || !h) return null;
    const scale = Math.min(1, this.side / Math.max(w, h));
    const width = Math.round(w * scale);
    const height = Math.round(h * scale);
    if (this.worker) {
      const grabbed = await this.grabInWorker(width, height);
      if (grabbed) return grabbed;
    }
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

  /** The frame encoded by the worker (its encodeMs as the page waited for it), or null once it failed. */
  async grabInWorker(width, height) {
    const start = performance.now();
    let frame;
    try {
      frame = new VideoFrame(this.video);
      const reply = new Promise((resolve) => this.replies.push(resolve));
      this.worker.postMessage({ frame, width, height, quality: this.quality }, [frame]);
      const { blob, drawMs, error } = await reply;
      if (error) throw new Error(error);
      this.workerFrames += 1;
      return { blob, width, height, drawMs, encodeMs: performance.now() - start - drawMs };
    } catch (error) {
      frame?.close(); // still the page's when it was not handed over
      this.fallBack(error.message);
      return null;
    }
  }
}

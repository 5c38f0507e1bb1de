// The frame grabber's worker: a camera frame (a VideoFrame, handed over) downscaled and JPEG-encoded off the page's
// main thread, which draws the avatars meanwhile. The page's canvas.toBlob waited for that thread to be idle:
// measured in headless Chromium, 9 ms a frame with the 2D avatars and 14 ms in 3D, where encoding alone takes 3.

let canvas = null;
let ctx = null;

self.onmessage = async ({ data: { frame, width, height, quality } }) => {
  try {
    if (!canvas || canvas.width !== width || canvas.height !== height) {
      canvas = new OffscreenCanvas(width, height);
      ctx = canvas.getContext("2d", { alpha: false });
    }
    const start = performance.now();
    ctx.drawImage(frame, 0, 0, width, height);
    const drawMs = performance.now() - start; // the page times the whole trip; this is its drawing part
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality });
    self.postMessage({ blob, drawMs });
  } catch (error) {
    self.postMessage({ error: error.message });
  } finally {
    frame.close();
  }
};

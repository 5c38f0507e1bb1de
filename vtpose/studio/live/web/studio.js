// The capture page: camera (or a video file) -> downscaled JPEG frames over the socket, one in flight ->
// poses back -> the avatar scene drawn here, with live fps and capture-to-screen latency.

import { everyFrame, FrameGrabber, openCamera, openFile } from "./camera.js";
import { Controls, save, saved } from "./controls.js";
import { Look, loadConfig } from "./look.js";
import { drawScene, fitScene } from "./renderer.js";
import { StudioSocket } from "./socket.js";
import { Stats } from "./stats.js";

const $ = (id) => document.getElementById(id);
// The scene is drawn this wide, its height following the camera's aspect.
const SCENE_WIDTH = 1280;

function showError(text) {
  const p = document.createElement("p");
  p.textContent = text;
  $("errors").prepend(p);
  while ($("errors").childElementCount > 5) $("errors").lastElementChild.remove();
}

async function main() {
  const config = await loadConfig();
  const look = new Look(config);
  const controls = new Controls(config);
  const stats = new Stats();
  const scene = $("scene");
  const ctx = scene.getContext("2d");
  const video = $("preview");
  const socket = new StudioSocket("capture", saved().pair || null);
  const grabber = new FrameGrabber(video, config.send_side, config.jpeg_quality);
  let fps = 30;
  let frameId = 0;
  const pending = new Map(); // frame id -> what the page measured before sending
  const studio = { stats, config, look, socket, lastPoses: null, errors: [], closes: [], ready: false };
  window.studio = studio;

  const redraw = () => drawScene(ctx, studio.lastPoses, look);
  const sendSettings = () => {
    const settings = controls.settings(fps);
    video.classList.toggle("mirrored", settings.mirror);
    look.apply(settings).then(redraw);
    save({ settings });
    socket.sendJSON(settings);
  };

  controls.addEventListener("settings", sendSettings);
  // Uploads live in the server's memory only while this page is connected: kept here to send again on reconnect.
  const uploads = { avatars: new Map(), background: null, fresh: new Set() };
  controls.addEventListener("avatar-file", (event) => {
    const message = { type: "avatar", ...event.detail };
    uploads.avatars.set(message.name, message);
    uploads.fresh.add(message.name); // chosen once the server has accepted it
    socket.sendJSON(message);
  });
  controls.addEventListener("background-file", async (event) => {
    uploads.background = event.detail.blob;
    await look.setUploadedBackground(event.detail.blob);
    socket.sendBackground(event.detail.blob);
    redraw();
  });
  controls.addEventListener("source", async (event) => {
    try {
      fps = event.detail.kind === "file" ? await openFile(video, event.detail.file) : await openCamera(video);
      $("status").textContent = event.detail.kind === "file" ? `playing ${event.detail.file.name}` : "camera on";
    } catch (error) {
      showError(`cannot open the ${event.detail.kind}: ${error.message}; choose a video file instead.`);
    }
  });

  socket.addEventListener("welcome", (event) => {
    save({ pair: event.detail.pair });
    controls.showOutputUrl(event.detail.pair);
    for (const message of uploads.avatars.values()) socket.sendJSON(message);
    if (uploads.background) socket.sendBackground(uploads.background);
    sendSettings();
    studio.ready = true;
  });
  socket.addEventListener("avatar", (event) => {
    look.addAvatar(event.detail.avatar);
    controls.addAvatar(event.detail.avatar.name, uploads.fresh.delete(event.detail.avatar.name));
  });
  socket.addEventListener("error", (event) => {
    if (event.detail.code === "bad_avatar") {
      for (const name of uploads.fresh) uploads.avatars.delete(name); // refused: not to be sent again
      uploads.fresh.clear();
    }
    studio.errors.push(event.detail);
    showError(`server: ${event.detail.message}`);
  });
  socket.addEventListener("close", (event) => {
    studio.closes.push(event.detail);
    $("status").textContent = `disconnected (${event.detail.code}${event.detail.reason ? `: ${event.detail.reason}` : ""}), retrying…`;
  });
  socket.addEventListener("open", () => ($("status").textContent = "connected"));
  socket.addEventListener("poses", (event) => {
    const poses = event.detail;
    const received = performance.now();
    fitScene(scene, SCENE_WIDTH, poses.size);
    studio.lastPoses = poses;
    const t0 = performance.now();
    redraw();
    const drawnAt = performance.now();
    const sent = pending.get(poses.id);
    pending.delete(poses.id);
    if (sent) {
      const server = poses.timing_ms.decode + poses.timing_ms.model + poses.timing_ms.track;
      stats.add(
        {
          id: poses.id,
          latency: drawnAt - poses.capture_ms,
          capture: sent.grabAt - poses.capture_ms,
          encode: sent.drawMs + sent.encodeMs,
          ahead: sent.sentAt - sent.grabAt - sent.drawMs - sent.encodeMs, // an encoded-ahead frame's wait to be sent
          network: received - sent.sentAt - server,
          decode: poses.timing_ms.decode,
          model: poses.timing_ms.model,
          track: poses.timing_ms.track,
          draw: drawnAt - t0,
          drawnAt,
          persons: poses.persons.length,
        },
        poses.persons.map((p) => [p.track_id, p.bbox[2] * p.bbox[3]]),
      );
    }
    $("fps").textContent = `${stats.fps().toFixed(1)} fps`;
    $("latency").textContent = `${stats.percentile("latency", 0.5).toFixed(0)} ms`;
  });

  // One frame in flight. The newest camera frame is sent as soon as the previous frame's answer is back; frames
  // the camera delivers meanwhile are replaced, never queued. When the answer is due before the next camera frame
  // would arrive, the newest frame is encoded ahead, so sending it does not wait for the encoder.
  let grabbing = false;
  let latestMs = null; // capture time of the newest camera frame
  let sentMs = null; // capture time of the last frame sent (or encoded ahead)
  let ready = null; // a frame encoded ahead, waiting for the answer to the one in flight
  let sentAt = 0;
  let frameGapMs = 33; // the camera's frame interval, smoothed
  let roundTripMs = 0; // send to answer, smoothed
  let encodeMs = 0; // grab and encode, smoothed
  const smooth = (old, value) => (old ? 0.8 * old + 0.2 * value : value);

  const encode = async (captureMs) => {
    const grabAt = performance.now();
    const grabbed = await grabber.grab();
    if (grabbed) encodeMs = smooth(encodeMs, grabbed.drawMs + grabbed.encodeMs);
    return grabbed && { captureMs, grabAt, ...grabbed };
  };
  const send = async (frame) => {
    frameId = (frameId + 1) >>> 0;
    if (await socket.sendFrame(frameId, frame.captureMs, frame.blob)) {
      sentAt = performance.now();
      stats.sent += 1;
      pending.set(frameId, { grabAt: frame.grabAt, drawMs: frame.drawMs, encodeMs: frame.encodeMs, sentAt });
      if (pending.size > 8) pending.delete(pending.keys().next().value);
    }
  };
  const pump = async () => {
    if (grabbing || !socket.open || latestMs === null) return;
    grabbing = true;
    try {
      if (socket.inFlight === null) {
        // An answer much later than expected leaves the frame encoded ahead stale: send the newest instead.
        if (ready && latestMs - ready.captureMs > 1.5 * frameGapMs) {
          ready = null;
          sentMs = null;
        }
        if (ready) {
          const frame = ready;
          ready = null;
          await send(frame);
        } else if (latestMs !== sentMs) {
          sentMs = latestMs;
          const frame = await encode(latestMs);
          if (frame) await send(frame);
        }
      } else if (latestMs !== sentMs && roundTripMs) {
        // Encode ahead only when the answer is due within a camera frame (else a later frame will be fresher).
        const due = sentAt + roundTripMs - encodeMs;
        if (performance.now() + frameGapMs >= due) {
          sentMs = latestMs;
          ready = await encode(latestMs);
        }
      }
    } finally {
      grabbing = false;
    }
    if (socket.inFlight === null && ready) pump(); // the answer came while encoding ahead
  };
  everyFrame(video, (captureMs) => {
    if (latestMs !== null && latestMs !== sentMs) stats.dropped += 1; // replaced before it could be sent
    if (latestMs !== null) frameGapMs = smooth(frameGapMs, Math.min(captureMs - latestMs, 200));
    latestMs = captureMs;
    pump();
  });
  socket.addEventListener("poses", () => (roundTripMs = smooth(roundTripMs, performance.now() - sentAt)));
  socket.addEventListener("close", () => (ready = null));
  socket.addEventListener("poses", pump);
  socket.addEventListener("error", pump);
  socket.addEventListener("open", pump);

  await look.apply(controls.settings(fps));
  redraw();
  socket.connect();
  try {
    fps = await openCamera(video);
    $("status").textContent = "camera on";
  } catch (error) {
    showError(`no camera (${error.message}); choose "video file…" as the source.`);
  }
}

main().catch((error) => showError(`the studio failed to start: ${error.message}`));

// The capture page: camera (or a video file) -> downscaled JPEG frames over the socket, one in flight ->
// poses back -> the avatar scene drawn here, with live fps and capture-to-screen latency.

import { everyFrame, FrameGrabber, openCamera, openFile } from "./camera.js";
import { Controls, save, saved } from "./controls.js";
import { Look, loadConfig } from "./look.js";
import { drawScene } from "./renderer.js";
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
  let lastPoses = null;
  const pending = new Map(); // frame id -> what the page measured before sending
  const studio = { stats, config, look, socket, lastPoses: null, errors: [], closes: [], ready: false };
  window.studio = studio;

  const redraw = () => drawScene(ctx, lastPoses, look);
  const sendSettings = () => {
    const settings = controls.settings(fps);
    video.classList.toggle("mirrored", settings.mirror);
    look.apply(settings).then(redraw);
    save({ settings });
    socket.sendJSON(settings);
  };

  controls.addEventListener("settings", sendSettings);
  controls.addEventListener("avatar-file", (event) => socket.sendJSON({ type: "avatar", ...event.detail }));
  controls.addEventListener("background-file", async (event) => {
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
    sendSettings();
    studio.ready = true;
  });
  socket.addEventListener("avatar", (event) => {
    look.addAvatar(event.detail.avatar);
    controls.addAvatar(event.detail.avatar.name);
  });
  socket.addEventListener("error", (event) => {
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
    const height = Math.round((SCENE_WIDTH * poses.size[1]) / poses.size[0]);
    if (scene.width !== SCENE_WIDTH || scene.height !== height) {
      scene.width = SCENE_WIDTH;
      scene.height = height;
    }
    lastPoses = poses;
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

  // The newest camera frame is sent as soon as the previous frame's answer is back (or as soon as it arrives, if
  // nothing is in flight); frames the camera delivers meanwhile are replaced, never queued.
  let grabbing = false;
  let latestMs = null; // capture time of the newest camera frame
  let sentMs = null; // capture time of the last frame sent
  const pump = async () => {
    if (grabbing || !socket.open || socket.inFlight !== null || latestMs === null || latestMs === sentMs) return;
    grabbing = true;
    const captureMs = latestMs;
    sentMs = latestMs;
    try {
      const grabAt = performance.now();
      const grabbed = await grabber.grab();
      if (!grabbed) return;
      frameId = (frameId + 1) >>> 0;
      if (await socket.sendFrame(frameId, captureMs, grabbed.blob)) {
        stats.sent += 1;
        pending.set(frameId, { grabAt, drawMs: grabbed.drawMs, encodeMs: grabbed.encodeMs, sentAt: performance.now() });
        if (pending.size > 8) pending.delete(pending.keys().next().value);
      }
    } finally {
      grabbing = false;
    }
  };
  everyFrame(video, (captureMs) => {
    if (latestMs !== null && latestMs !== sentMs) stats.dropped += 1; // replaced before it could be sent
    latestMs = captureMs;
    pump();
  });
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

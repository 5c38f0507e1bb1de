// The capture page: camera (or a video file) -> downscaled JPEG frames over the socket, one in flight (pump.js)
// -> poses back -> the avatar scene drawn here, with live fps and capture-to-screen latency. This module wires
// the page's parts together; `window.studio` is the page, for tests and benchmarks (`joints3d()`: the 3D avatars'
// joints projected into frame pixels beside the keypoints they follow).

import { FrameGrabber, openCamera, openFile } from "./camera.js";
import { Controls, save, saved } from "./controls.js";
import { EYES_SHUT, ExprSender, Expressions, FACE_REDRAW_MS, MOUTH_OPEN, faceChanged } from "./expressions.js";
import { Look, loadConfig } from "./look.js";
import { FramePump } from "./pump.js";
import { drawScene, fitScene, sceneImage } from "./renderer.js";
import { Scene3D, checkVrmLoads, fixedScaleFrom, vrmFileProblem } from "./renderer3d.js";
import { StudioSocket } from "./socket.js";
import { Stats } from "./stats.js";
import { Uploads } from "./uploads.js";
import { VrmChoice } from "./vrms.js";

const $ = (id) => document.getElementById(id);
// The scene is drawn this wide, its height following the camera's aspect.
const SCENE_WIDTH = 1280;
const ERRORS_SHOWN = 5;

function showError(text) {
  const p = document.createElement("p");
  p.textContent = text;
  $("errors").prepend(p);
  while ($("errors").childElementCount > ERRORS_SHOWN) $("errors").lastElementChild.remove();
}

/** The header's model line: the service's `GET /model` (the studio is mounted at /studio/), asked again on each
 * welcome, so after a redeploy the page names the model now serving. */
async function showModel() {
  let text = "model: unknown (no /model beside this page)";
  try {
    const response = await fetch("../model");
    if (response.ok) text = `model: ${(await response.json()).description}`;
  } catch (error) {
    text = `model: unknown (${error.message})`;
  }
  $("model").textContent = text;
}

class CapturePage {
  constructor(config) {
    this.config = config;
    this.look = new Look(config);
    this.controls = new Controls(config);
    this.stats = new Stats();
    this.scene = $("scene");
    this.ctx = this.scene.getContext("2d");
    this.video = $("preview");
    this.socket = new StudioSocket(config.protocol, "capture", saved().pair || null);
    this.uploads = new Uploads(this.socket);
    const grabber = new FrameGrabber(this.video, config.send_side, config.jpeg_quality, showError);
    this.pump = new FramePump(this.socket, grabber, this.stats);
    this.fps = 30; // the source's frame rate, reported in the settings
    this.lastPoses = null;
    this.errors = []; // error messages from the server
    this.closes = []; // {code, reason} of each close
    this.ready = false; // welcomed by the server, settings sent
    // Blink, breath and mouth; `?expr=off` keeps the face still (draw.py's), for tests that compare pixels.
    this.expressions = new Expressions({ enabled: new URLSearchParams(location.search).get("expr") !== "off" });
    this.look.expressions = this.expressions; // the 3D renderer reads it there
    this.expression = this.expressions.state(performance.now()); // the one drawn last
    this.exprSender = new ExprSender((message) => this.socket.sendJSON(message));
    this.expressionsDrawn = { shut: 0, open: 0 }; // frames drawn with the eyes shut, the mouth open (for tests)
    this.drawnAtMs = 0;
    this.vrmErrors = []; // VRM files this page refused or could not load, as shown
    this.scene3d = new Scene3D((message) => this.vrmError(message), () => this.redraw(), fixedScaleFrom(location.search));
    this.scene3d.attach(this.scene);
    this.look.scene3d = this.scene3d;
    this.vrms = new VrmChoice(config, this.scene3d);
  }

  /** For tests and snapshots: the scene as shown (background, avatars in 2D or 3D), a PNG data URL. */
  sceneImage() {
    return sceneImage(this.scene, this.look);
  }

  vrmError(message) {
    this.vrmErrors.push(message);
    showError(message);
  }

  /** For tests and benchmarks: Scene3D.joints3d of what was drawn last. */
  joints3d() {
    return this.scene3d.joints3d();
  }

  /** The user's own .vrm: checked here (size, glTF header, three-vrm loads it), then sent; shown once accepted. */
  async sendVrmFile(file) {
    const bytes = await file.arrayBuffer();
    const problem = vrmFileProblem(bytes, file.name, this.config.limits.max_vrm_bytes);
    if (problem) return this.vrmError(problem);
    try {
      await checkVrmLoads(bytes);
    } catch (error) {
      return this.vrmError(`cannot load the VRM ${file.name}: ${error.message}; the avatar before it stays.`);
    }
    this.uploads.sendVrm(file.name, bytes);
  }

  /** Draw the scene; resolves when it is on screen (see drawScene). */
  redraw(expression = this.expressions.state(performance.now())) {
    this.expression = expression;
    this.drawnAtMs = performance.now();
    const rendered = drawScene(this.ctx, this.lastPoses, this.look, expression);
    if (this.lastPoses && expression.blink >= EYES_SHUT) this.expressionsDrawn.shut += 1;
    if (this.lastPoses && expression.mouth >= MOUTH_OPEN) this.expressionsDrawn.open += 1;
    return rendered;
  }

  /** Each display frame: the expression goes to the output view, and the scene is redrawn when the face changed
   * (between poses, so a blink shows whatever the frame rate). */
  tickExpressions() {
    const now = performance.now();
    const state = this.expressions.state(now);
    if (this.ready) this.exprSender.offer(state, now);
    if (this.lastPoses && now - this.drawnAtMs >= FACE_REDRAW_MS && faceChanged(state, this.expression)) this.redraw(state);
    requestAnimationFrame(() => this.tickExpressions());
  }

  async toggleMicrophone(on) {
    try {
      if (on) await this.expressions.startMicrophone();
      else await this.expressions.stopMicrophone();
    } catch (error) {
      $("mouth-mic").checked = false;
      showError(`cannot open the microphone: ${error.message}; the mouth stays closed.`);
    }
  }

  sendSettings() {
    const settings = this.controls.settings(this.fps);
    this.video.classList.toggle("mirrored", settings.mirror);
    this.look.apply(settings).then(() => this.redraw());
    this.vrms.apply(settings).then((shown) => shown && this.redraw());
    save({ settings });
    this.socket.sendJSON(settings);
  }

  listenToControls() {
    const controls = this.controls;
    controls.addEventListener("settings", () => this.sendSettings());
    controls.addEventListener("avatar-file", (event) => this.uploads.sendAvatar(event.detail.name, event.detail.yaml));
    controls.addEventListener("background-file", async (event) => {
      await this.look.setUploadedBackground(event.detail.blob);
      this.uploads.sendBackground(event.detail.blob);
      this.redraw();
    });
    controls.addEventListener("vrm-file", (event) => this.sendVrmFile(event.detail.file));
    controls.addEventListener("source", (event) => this.openSource(event.detail));
    controls.addEventListener("microphone", (event) => this.toggleMicrophone(event.detail.on));
  }

  async openSource({ kind, file }) {
    try {
      this.fps = kind === "file" ? await openFile(this.video, file) : await openCamera(this.video);
      $("status").textContent = kind === "file" ? `playing ${file.name}` : "camera on";
    } catch (error) {
      showError(`cannot open the ${kind}: ${error.message}; choose a video file instead.`);
    }
  }

  listenToSocket() {
    const socket = this.socket;
    socket.addEventListener("welcome", (event) => {
      save({ pair: event.detail.pair });
      this.controls.showOutputUrl(event.detail.pair);
      this.uploads.resend();
      this.sendSettings();
      this.exprSender.reset();
      this.ready = true;
      showModel();
    });
    socket.addEventListener("avatar", (event) => {
      const { avatar } = event.detail;
      this.look.addAvatar(avatar);
      this.controls.addAvatar(avatar.name, this.uploads.accepted(avatar.name));
    });
    socket.addEventListener("vrm", () => {
      const { vrm, fresh } = this.uploads.acceptedVrm();
      if (!fresh) return; // the same file again after a reconnect
      this.vrms.setUpload(vrm.bytes);
      this.controls.addVrm(vrm.name);
    });
    socket.addEventListener("error", (event) => {
      if (event.detail.code === "unknown_type" && event.detail.message.includes("'expr'")) {
        this.exprSender.enabled = false; // a server without `expr`: the output view blinks on its own
        return;
      }
      if (event.detail.code === "bad_avatar") this.uploads.refused();
      if (event.detail.code === "bad_vrm" || event.detail.code === "too_large") this.uploads.refusedVrm();
      this.errors.push(event.detail);
      showError(`server: ${event.detail.message}`);
    });
    socket.addEventListener("close", (event) => {
      const { code, reason } = event.detail;
      this.closes.push(event.detail);
      $("status").textContent = `disconnected (${code}${reason ? `: ${reason}` : ""}), retrying…`;
    });
    socket.addEventListener("open", () => ($("status").textContent = "connected"));
    socket.addEventListener("poses", (event) => this.showPoses(event.detail));
  }

  /** Draw an answer and record where its capture-to-screen time went. */
  showPoses(poses) {
    const received = performance.now();
    fitScene(this.scene, SCENE_WIDTH, poses.size);
    this.lastPoses = poses;
    const drawStart = performance.now();
    // Measured as drawn when it is: in 3D once the avatars' layer is rendered, while the next frame is on its way.
    this.redraw().then((drawnAt) => {
      const record = this.pump.measure(poses, { received, drawStart, drawnAt });
      if (record) this.stats.add(record, poses.persons.map((p) => [p.track_id, p.bbox[2] * p.bbox[3]]));
      $("fps").textContent = `${this.stats.fps().toFixed(1)} fps`;
      $("latency").textContent = `${this.stats.percentile("latency", 0.5).toFixed(0)} ms`;
    });
    // Here too, not only on display frames: a hidden tab gets none, and the view must not keep a half blink.
    this.exprSender.offer(this.expression, performance.now());
  }

  async start() {
    this.listenToControls();
    this.listenToSocket();
    this.pump.start(this.video); // after the page's own poses listener (see FramePump.start)
    this.tickExpressions();
    await this.look.apply(this.controls.settings(this.fps));
    this.redraw();
    this.socket.connect();
    try {
      this.fps = await openCamera(this.video);
      $("status").textContent = "camera on";
    } catch (error) {
      showError(`no camera (${error.message}); choose "video file…" as the source.`);
    }
  }
}

async function main() {
  const page = new CapturePage(await loadConfig());
  window.studio = page;
  await page.start();
}

main().catch((error) => showError(`the studio failed to start: ${error.message}`));

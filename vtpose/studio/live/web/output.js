// The output view for streaming software: only the scene, following the paired capture page's poses and
// settings, in 2D or 3D, and its blink and mouth (`expr` messages; its own blinks until one comes, its own breath).
// URL: output?pair=CODE[&width=1280] (the capture page shows it); `&expr=off` keeps the face still. `window.studio`
// is the view, for tests (`joints3d()` as on the capture page).

import { Expressions, FACE_REDRAW_MS, faceChanged } from "./expressions.js";
import { Look, loadConfig } from "./look.js";
import { drawScene, fitScene, sceneImage } from "./renderer.js";
import { Scene3D, fixedScaleFrom } from "./renderer3d.js";
import { StudioSocket } from "./socket.js";
import { Stats } from "./stats.js";
import { VrmChoice } from "./vrms.js";

async function main() {
  const params = new URLSearchParams(location.search);
  const width = Math.min(Math.max(Number(params.get("width")) || 1280, 160), 3840);
  const config = await loadConfig();
  const look = new Look(config);
  const stats = new Stats();
  const scene = document.getElementById("scene");
  const ctx = scene.getContext("2d");
  const socket = new StudioSocket(config.protocol, "output", params.get("pair"));
  const expressions = new Expressions({ enabled: params.get("expr") !== "off" });
  look.expressions = expressions; // the 3D renderer reads it there
  const vrmErrors = []; // a VRM that does not load here (the view has nowhere to show it); the one before stays
  const scene3d = new Scene3D(
    (message) => {
      vrmErrors.push(message);
      console.warn(message);
    },
    () => redraw(),
    fixedScaleFrom(location.search),
  );
  scene3d.attach(scene);
  look.scene3d = scene3d;
  const vrms = new VrmChoice(config, scene3d);
  const joints3d = () => scene3d.joints3d();
  const image = () => sceneImage(scene, look);
  const studio = { stats, look, socket, expressions, expression: null, exprs: 0, lastPoses: null, settings: null, closes: [], vrmErrors, joints3d, sceneImage: image };
  window.studio = studio;
  let drawnAtMs = 0;
  const redraw = (expression = expressions.state(performance.now())) => {
    studio.expression = expression;
    drawnAtMs = performance.now();
    return drawScene(ctx, studio.lastPoses, look, expression);
  };
  // Each display frame: redraw between poses when the face changed (a blink, the capture page's `expr`).
  const tick = () => {
    const now = performance.now();
    const state = expressions.state(now);
    if (studio.lastPoses && now - drawnAtMs >= FACE_REDRAW_MS && faceChanged(state, studio.expression)) redraw(state);
    requestAnimationFrame(tick);
  };

  socket.addEventListener("settings", (event) => {
    studio.settings = event.detail;
    look.apply(event.detail).then(redraw);
    vrms.apply(look.settings).then((shown) => shown && redraw());
  });
  socket.addEventListener("vrm-file", (event) => vrms.setUpload(event.detail.bytes).then((shown) => shown && redraw()));
  socket.addEventListener("avatar", (event) => look.addAvatar(event.detail.avatar));
  socket.addEventListener("background", async (event) => {
    await look.setUploadedBackground(event.detail.blob);
    redraw();
  });
  socket.addEventListener("expr", (event) => {
    expressions.setRemote(event.detail);
    studio.exprs += 1;
  });
  socket.addEventListener("close", (event) => studio.closes.push(event.detail));
  socket.addEventListener("poses", (event) => {
    const poses = event.detail;
    fitScene(scene, width, poses.size);
    studio.lastPoses = poses;
    redraw().then((drawnAt) => stats.add({ id: poses.id, drawnAt, persons: poses.persons.length }, poses.persons.map((p) => [p.track_id, p.bbox[2] * p.bbox[3]])));
  });
  await look.apply(look.settings);
  redraw();
  socket.connect();
  tick();
}

main();

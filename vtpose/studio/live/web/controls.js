// The capture page's controls: 2D or 3D, avatar (a 2D definition or a VRM), background, mirror, skeleton, people,
// input source, output view URL, and the mouth-from-microphone toggle. Choices are kept in localStorage (with the
// pairing code, so an OBS source's URL survives a reload); the microphone toggle is not: it starts off on every load.

const STORE = "vtpose-studio";

export function saved() {
  try {
    return JSON.parse(localStorage.getItem(STORE) || "{}");
  } catch {
    return {};
  }
}

export function save(values) {
  localStorage.setItem(STORE, JSON.stringify({ ...saved(), ...values }));
}

const $ = (id) => document.getElementById(id);

function option(select, value, label) {
  const opt = document.createElement("option");
  opt.value = value;
  opt.textContent = label;
  select.append(opt);
  return opt;
}

export class Controls extends EventTarget {
  constructor(config) {
    super();
    this.config = config;
    const avatar = $("avatar");
    option(avatar, "", "each person their own");
    for (const a of config.avatars) option(avatar, a.name, config.user_avatars.includes(a.name) ? `${a.name} (yours)` : a.name);
    this.threeD = config.protocol.vrm !== undefined; // a server that draws VRMs (it sends body3d)
    const vrm = $("vrm");
    for (const v of config.vrms || []) option(vrm, `prepared:${v.name}`, v.source === "user" ? `${v.name} (yours)` : v.name);
    if (config.default_vrm) vrm.value = `prepared:${config.default_vrm}`;
    $("mode").disabled = vrm.disabled = $("vrm-file").disabled = !this.threeD;
    const background = $("background");
    for (const name of config.backgrounds) option(background, `prepared:${name}`, name);
    option(background, "color", "solid colour");
    option(background, "transparent", "transparent (for OBS)");
    option(background, "image", "uploaded image");
    const keep = saved();
    if (keep.settings) this.restore(keep.settings);
    else background.value = `prepared:${config.default_background}`;
    for (const id of ["mode", "vrm", "avatar", "person", "mirror", "skeleton", "background", "background-color"]) {
      $(id).addEventListener("change", () => this.changed());
    }
    $("avatar-file").addEventListener("change", async (event) => {
      const file = event.target.files[0];
      if (file) this.emit("avatar-file", { name: file.name.replace(/\.ya?ml$/i, ""), yaml: await file.text() });
    });
    $("vrm-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      event.target.value = ""; // the same file chosen again (after a fix) is a change again
      if (file) this.emit("vrm-file", { file });
    });
    $("background-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (!file) return;
      $("background").value = "image";
      this.emit("background-file", { blob: file });
      this.changed();
    });
    $("source").addEventListener("change", () => {
      if ($("source").value === "file") $("video-file").click();
      else this.emit("source", { kind: "camera" });
    });
    $("video-file").addEventListener("change", (event) => {
      const file = event.target.files[0];
      if (file) this.emit("source", { kind: "file", file });
    });
    $("mouth-mic").addEventListener("change", () => this.emit("microphone", { on: $("mouth-mic").checked }));
    $("show-preview").addEventListener("change", () => $("preview").classList.toggle("hidden", !$("show-preview").checked));
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  restore(settings) {
    if (settings.avatar !== undefined) $("avatar").value = settings.avatar ?? "";
    if ($("avatar").selectedIndex < 0) $("avatar").value = "";
    $("person").value = settings.person ?? "all";
    $("mode").value = settings.mode ?? "2d";
    if (settings.vrm && settings.vrm.kind === "prepared") $("vrm").value = `prepared:${settings.vrm.name}`;
    if ($("vrm").selectedIndex < 0 && this.config.default_vrm) $("vrm").value = `prepared:${this.config.default_vrm}`;
    $("mirror").checked = settings.mirror ?? true;
    $("skeleton").checked = settings.skeleton ?? false;
    const bg = settings.background ?? {};
    if (bg.kind === "prepared") $("background").value = `prepared:${bg.name}`;
    else if (bg.kind === "color" || bg.kind === "transparent") $("background").value = bg.kind;
    if (bg.color) $("background-color").value = bg.color;
    if ($("background").selectedIndex < 0 || bg.kind === "image") $("background").value = `prepared:${this.config.default_background}`;
  }

  /** Add an uploaded avatar to the list, and choose it when `choose` (a fresh upload, not a re-sent one). */
  addAvatar(name, choose) {
    if (![...$("avatar").options].some((o) => o.value === name)) option($("avatar"), name, `${name} (uploaded)`);
    if (!choose) return;
    $("avatar").value = name;
    this.changed();
  }

  /** Add an uploaded VRM to the 3D list and choose it (the server has accepted it). */
  addVrm(name) {
    const value = `upload:${name}`;
    if (![...$("vrm").options].some((o) => o.value === value)) option($("vrm"), value, `${name} (uploaded)`);
    $("vrm").value = value;
    $("mode").value = "3d";
    this.changed();
  }

  /** The settings message the controls describe (vtpose.studio.live.protocol.Settings). */
  settings(fps) {
    const choice = $("background").value;
    let background;
    if (choice.startsWith("prepared:")) background = { kind: "prepared", name: choice.slice("prepared:".length) };
    else if (choice === "color") background = { kind: "color", color: $("background-color").value };
    else background = { kind: choice };
    const threeD = {};
    if (this.threeD) {
      const [kind, ...name] = $("vrm").value.split(":");
      threeD.mode = $("mode").value;
      if (kind) threeD.vrm = { kind, name: name.join(":") };
    }
    return {
      type: "settings",
      avatar: $("avatar").value || null,
      person: $("person").value,
      mirror: $("mirror").checked,
      skeleton: $("skeleton").checked,
      background,
      fps,
      ...threeD,
    };
  }

  changed() {
    this.emit("settings", {});
  }

  showOutputUrl(pair) {
    const url = new URL(`output?pair=${encodeURIComponent(pair)}`, location.href).href;
    $("output-url").value = url;
    $("output-link").href = url;
  }
}

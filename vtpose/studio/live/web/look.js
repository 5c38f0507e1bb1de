// What the scene looks like: the avatar definitions and backgrounds (from /api/config) and the current settings.
// Shared by the capture page and the output view, which follows the capture page's settings.

export async function loadConfig() {
  const response = await fetch("api/config");
  if (!response.ok) throw new Error(`api/config answered ${response.status}`);
  return response.json();
}

export class Look {
  constructor(config) {
    this.config = config;
    this.skeleton = config.skeleton;
    this.avatars = Object.fromEntries(config.avatars.map((a) => [a.name, a]));
    this.settings = {
      avatar: null,
      person: "all",
      mirror: true,
      skeleton: false,
      background: { kind: "prepared", name: config.default_background },
      fps: 30,
    };
    // A server that draws VRMs has two more settings.
    if (config.protocol.vrm !== undefined) Object.assign(this.settings, { mode: "2d", vrm: { kind: "prepared", name: config.default_vrm } });
    this.scene3d = null; // the 3D scene (renderer3d.js), drawn instead of the 2D avatars in 3D mode
    this.expressions = null; // blink, mouth and breath now (expressions.js), where the page has them
    this.background = null; // the image drawn behind the avatars (a prepared one, or the uploaded one)
    this.uploadedBackground = null;
    this.loading = Promise.resolve();
  }

  addAvatar(definition) {
    this.avatars[definition.name] = definition;
  }

  /** Take new settings; loads the prepared background image when it changed. */
  apply(settings) {
    const previous = this.settings.background;
    this.settings = { ...this.settings, ...settings };
    const bg = this.settings.background;
    if (bg.kind === "prepared" && (previous.kind !== "prepared" || previous.name !== bg.name || !this.background)) {
      this.loading = loadImage(`backgrounds/${encodeURIComponent(bg.name)}`).then((img) => {
        if (this.settings.background.kind === "prepared" && this.settings.background.name === bg.name) this.background = img;
      });
    } else if (bg.kind === "image") {
      this.background = this.uploadedBackground;
    }
    return this.loading;
  }

  /** An uploaded background image (a Blob): shown while the background kind is "image". */
  async setUploadedBackground(blob) {
    const img = await loadImage(URL.createObjectURL(blob));
    this.uploadedBackground = img;
    if (this.settings.background.kind === "image") this.background = img;
  }
}

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`cannot load image ${src}`));
    img.src = src;
  });
}

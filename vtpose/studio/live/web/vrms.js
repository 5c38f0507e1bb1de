// Which VRM the 3D scene shows: a prepared or user one from the server (by its URL in api/config), or the capture
// page's own file (on the capture page: the file the server accepted; on the output view: the relayed bytes).

export class VrmChoice {
  /**
   * @param {object} config api/config (`vrms`: [{name, url, source}])
   * @param {import("./renderer3d.js").Scene3D} scene where the chosen VRM is shown
   */
  constructor(config, scene) {
    this.urls = Object.fromEntries((config.vrms || []).map((v) => [v.name, v.url]));
    this.scene = scene;
    this.fetched = new Map(); // name -> Promise<ArrayBuffer>
    this.upload = null; // {bytes, serial}: the uploaded file, numbered so that a new one replaces the old
    this.settings = null;
  }

  /** The uploaded VRM's bytes (replacing any before); shown when the settings choose the upload. */
  setUpload(bytes) {
    this.upload = { bytes, serial: (this.upload ? this.upload.serial : 0) + 1 };
    return this.apply(this.settings);
  }

  /** Show what `settings` choose (in 3D mode); resolves to whether the scene shows it. */
  async apply(settings) {
    this.settings = settings;
    if (!settings || settings.mode !== "3d" || !settings.vrm) return false;
    const { kind, name } = settings.vrm;
    if (kind === "upload") {
      if (!this.upload) return false; // its bytes are on their way (the output view gets them before the settings)
      return this.scene.show(`upload:${this.upload.serial}`, this.upload.bytes, name);
    }
    const url = this.urls[name];
    if (!url) {
      this.scene.onError(`no 3D avatar ${name} on this server; choose one of ${Object.keys(this.urls).join(", ")}.`);
      return false;
    }
    if (!this.fetched.has(name)) this.fetched.set(name, fetchBytes(url));
    let bytes;
    try {
      bytes = await this.fetched.get(name);
    } catch (error) {
      this.fetched.delete(name);
      this.scene.onError(`cannot fetch the 3D avatar ${name}: ${error.message}`);
      return false;
    }
    if (this.settings !== settings) return false; // chosen otherwise while it downloaded
    return this.scene.show(`prepared:${name}`, bytes, name);
  }
}

async function fetchBytes(url) {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url} answered ${response.status}`);
  return response.arrayBuffer();
}

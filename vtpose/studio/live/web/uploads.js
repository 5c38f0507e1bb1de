// What the user uploaded (avatar definitions, a background image, a VRM). The server keeps uploads only while the page
// is connected: they are kept here to be sent again on each reconnect.

export class Uploads {
  /** @param {import("./socket.js").StudioSocket} socket */
  constructor(socket) {
    this.socket = socket;
    this.avatars = new Map(); // name -> the `avatar` message
    this.background = null; // the image Blob
    this.vrm = null; // {name, bytes} of the VRM file the server accepted
    this.pendingVrm = null; // {name, bytes} sent, not yet answered
    this.fresh = new Set(); // avatar names sent but not yet accepted: chosen once the server accepts them
  }

  sendAvatar(name, yaml) {
    const message = { type: "avatar", name, yaml };
    this.avatars.set(name, message);
    this.fresh.add(name);
    this.socket.sendJSON(message);
  }

  sendBackground(blob) {
    this.background = blob;
    this.socket.sendBackground(blob);
  }

  sendVrm(name, bytes) {
    this.pendingVrm = { name, bytes };
    this.socket.sendVrm(bytes);
  }

  /** The server accepted the VRM sent last (kept to be sent again on reconnects): {vrm: {name, bytes}, fresh},
   * fresh when it was sent just now (not re-sent after a reconnect). */
  acceptedVrm() {
    const fresh = this.pendingVrm !== null;
    if (fresh) this.vrm = this.pendingVrm;
    this.pendingVrm = null;
    return { vrm: this.vrm, fresh };
  }

  /** The server refused the VRM sent last (`bad_vrm`, `too_large`): the one before stays. */
  refusedVrm() {
    this.pendingVrm = null;
  }

  /** Send everything again (the server forgot it when the connection dropped). */
  resend() {
    for (const message of this.avatars.values()) this.socket.sendJSON(message);
    if (this.background) this.socket.sendBackground(this.background);
    if (this.vrm) this.socket.sendVrm(this.vrm.bytes);
  }

  /** The server accepted avatar `name`; returns whether it was uploaded just now (and should be chosen). */
  accepted(name) {
    return this.fresh.delete(name);
  }

  /** The server refused the avatars just sent: they are not to be sent again. */
  refused() {
    for (const name of this.fresh) this.avatars.delete(name);
    this.fresh.clear();
  }
}

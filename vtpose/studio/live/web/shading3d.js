// The 3D scene's lights, and the prepared avatars' cheaper shading under them.
//
// Software WebGL (SwiftShader, as in headless Chromium and on a machine without a GPU) pays on the CPU for every
// pixel's shader. The prepared avatars are matte and evenly coloured (glTF PBR, roughness 0.8, no metal, no
// textures), so lighting them once per vertex looks the same as three.js's per-pixel PBR: measured, four kitties at
// 640x360 rendered in 13-17 ms with MeshStandardMaterial, 10 ms lit per vertex. A file's material asks for it in
// its glTF `extras` (vtpose/studio/avatar3d/generate.py writes them); a user's VRM keeps its own materials.

import * as THREE from "./vendor/three/three.module.js";

// The material extra that asks for per-vertex lighting (generate.py's SHADING_EXTRA).
const SHADING_EXTRA = "vtpose_shading";
const VERTEX_SHADING = "vertex";

// Sky and ground light (a hemisphere light: colour by how far a surface faces up) and a key light from the front,
// above and a little to the right: faces lit, limbs shaded.
const SKY = 0xffffff;
const GROUND = 0x8888a0;
const HEMISPHERE_INTENSITY = 1.6;
const KEY = 0xffffff;
const KEY_INTENSITY = 1.8;
const KEY_FROM = [0.3, 0.6, 1];

/** The scene's lights, for every material: [hemisphere, key]. */
export function sceneLights() {
  const key = new THREE.DirectionalLight(KEY, KEY_INTENSITY);
  key.position.set(...KEY_FROM);
  return [new THREE.HemisphereLight(SKY, GROUND, HEMISPHERE_INTENSITY), key];
}

// The same lights per vertex, as three.js's physically based diffuse term (irradiance times albedo over pi):
// hemisphere irradiance mixed by the world normal's height, plus the key light by Lambert's cosine.
const linear = (hex, intensity) => new THREE.Color(hex).multiplyScalar(intensity); // THREE.Color is linear
const LIGHT_UNIFORMS = {
  vtposeSky: { value: linear(SKY, HEMISPHERE_INTENSITY) },
  vtposeGround: { value: linear(GROUND, HEMISPHERE_INTENSITY) },
  vtposeKey: { value: linear(KEY, KEY_INTENSITY) },
  vtposeKeyDir: { value: new THREE.Vector3(...KEY_FROM).normalize() },
};

// MeshBasicMaterial's shader text that the lighting is spliced into (three.js r187); patched() fails loudly if a
// three.js update moves it.
const NORMALS_ONLY_FOR = "#if defined ( USE_ENVMAP ) || defined ( USE_SKINNING )";
const VERTEX_DECLARATIONS = `uniform vec3 vtposeSky;
uniform vec3 vtposeGround;
uniform vec3 vtposeKey;
uniform vec3 vtposeKeyDir;
varying vec3 vtposeLight;
void main() {`;
const VERTEX_LIGHT = `#include <fog_vertex>
  vec3 vtposeNormal = inverseTransformDirection( transformedNormal, viewMatrix );
  vec3 vtposeHemisphere = mix( vtposeGround, vtposeSky, 0.5 * vtposeNormal.y + 0.5 );
  vtposeLight = ( vtposeHemisphere + vtposeKey * max( dot( vtposeNormal, vtposeKeyDir ), 0.0 ) ) * RECIPROCAL_PI;`;
const FRAGMENT_DECLARATIONS = `uniform vec3 vtposeEmissive;
varying vec3 vtposeLight;
void main() {`;
const FRAGMENT_LIGHT = `#include <color_fragment>
  diffuseColor.rgb = diffuseColor.rgb * vtposeLight + vtposeEmissive;`;

function patched(source, search, replacement) {
  if (!source.includes(search)) throw new Error(`three.js's MeshBasicMaterial shader has no "${search}" to light`);
  return source.replace(search, replacement);
}

/** A MeshBasicMaterial standing for `standard` (its colour, vertex colours, texture, emission), lit per vertex. */
function vertexLitMaterial(standard) {
  const material = new THREE.MeshBasicMaterial({
    name: standard.name,
    color: standard.color,
    map: standard.map,
    vertexColors: standard.vertexColors,
    transparent: standard.transparent,
    opacity: standard.opacity,
    side: standard.side,
  });
  const emissive = standard.emissive ? standard.emissive.clone().multiplyScalar(standard.emissiveIntensity ?? 1) : null;
  material.userData = { ...standard.userData };
  material.onBeforeCompile = (shader) => {
    Object.assign(shader.uniforms, LIGHT_UNIFORMS, { vtposeEmissive: { value: emissive ?? new THREE.Color(0) } });
    let vertex = patched(shader.vertexShader, NORMALS_ONLY_FOR, "#if 1"); // the normals, skinned
    vertex = patched(vertex, "void main() {", VERTEX_DECLARATIONS);
    shader.vertexShader = patched(vertex, "#include <fog_vertex>", VERTEX_LIGHT);
    const fragment = patched(shader.fragmentShader, "void main() {", FRAGMENT_DECLARATIONS);
    shader.fragmentShader = patched(fragment, "#include <color_fragment>", FRAGMENT_LIGHT);
  };
  material.customProgramCacheKey = () => "vtpose-vertex-lit";
  return material;
}

/** Light per vertex every material under `root` whose glTF extras ask for it (the prepared avatars'). */
export function applyVertexLighting(root) {
  const lit = new Map(); // one replacement per material, shared as the file shares it
  root.traverse((object) => {
    if (!object.isMesh) return;
    const swap = (material) => {
      if (material.userData?.[SHADING_EXTRA] !== VERTEX_SHADING) return material;
      if (!lit.has(material)) lit.set(material, vertexLitMaterial(material));
      return lit.get(material);
    };
    object.material = Array.isArray(object.material) ? object.material.map(swap) : swap(object.material);
  });
  for (const material of lit.keys()) material.dispose();
}

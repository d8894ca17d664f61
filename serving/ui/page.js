// The keras-dcgan page: a grid of digits from seeds, a digit picker, a latent walk, PNG downloads.
// One file, two back ends, picked by ui/model.json: "rest" asks the TF Serving REST API of the
// server that sent the page (`keras-dcgan serve`); "onnx" runs the generator in the page with
// onnxruntime-web (the static bundle of `keras-dcgan web`). Either way, nothing leaves the host
// the page came from.
import { MAX_SEED, interpolate, latentsForDigits, latentsFromSeeds } from "./latents.js";

const PADDING = 2; // black gaps between digits, as keras_dcgan/image_grid.py's tile
const GRID_SCALE = 4;
const WALK_SCALE = 8;
const $ = (id) => document.getElementById(id);

async function fetchJson(url, options) {
  const response = await fetch(url, options);
  let body;
  try {
    body = await response.json();
  } catch {
    throw new Error(`${url} answered HTTP ${response.status} without JSON`);
  }
  if (!response.ok || body.error) throw new Error(body.error || `${url} answered HTTP ${response.status}`);
  return body;
}

// A back end answers images as {count, height, width, pixels: Float32Array} with values in [0, 1].

async function restBackend(info) {
  const model = `v1/models/${encodeURIComponent(info.model_name)}/versions/${info.version}`;
  const names = info.contract; // the export contract's signature and tensor names
  const signatures = (await fetchJson(`${model}/metadata`)).metadata.signature_def.signature_def;
  const latentDim = Number(signatures[names.latents_signature].inputs[names.latent].tensor_shape.dim[1].size);
  async function predict(signature, inputs) {
    const body = JSON.stringify({ signature_name: signature, inputs });
    const { outputs } = await fetchJson(`${model}:predict`, { method: "POST", headers: { "content-type": "application/json" }, body });
    return { count: outputs.length, height: outputs[0].length, width: outputs[0][0].length, pixels: Float32Array.from(outputs.flat(3)) };
  }
  const rows = (latents) => Array.from({ length: latents.length / latentDim }, (_, row) => Array.from(latents.subarray(row * latentDim, (row + 1) * latentDim)));
  return {
    description: "images from this server's REST API",
    latentDim,
    takesDigits: names.digits_signature in signatures,
    fromSeeds: (seeds) => predict(names.seeds_signature, seeds),
    fromDigits: (seeds, digits) => predict(names.digits_signature, { [names.seeds]: seeds, [names.digits]: digits }),
    fromLatents: (latents) => predict(names.latents_signature, rows(latents)),
  };
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`cannot load ${src}: the bundle is incomplete, rebuild it with keras-dcgan web`));
    document.head.append(script);
  });
}

async function onnxBackend(info) {
  await loadScript("ort.wasm.min.js");
  /* global ort */
  ort.env.wasm.wasmPaths = "./";
  ort.env.wasm.numThreads = 1; // threads need cross-origin isolation headers, which a plain static host does not send
  const session = await ort.InferenceSession.create(info.onnx.file, { executionProviders: ["wasm"] });
  const [height, width] = info.image_shape;
  const latentDim = info.latent_dim;
  let queue = Promise.resolve(); // one run at a time: a session is not re-entrant
  function fromLatents(latents) {
    const count = latents.length / latentDim;
    const run = async () => {
      const outputs = await session.run({ [info.onnx.input]: new ort.Tensor("float32", latents, [count, latentDim]) });
      return { count, height, width, pixels: outputs[info.onnx.output].data };
    };
    const answer = queue.then(run);
    queue = answer.catch(() => {});
    return answer;
  }
  return {
    description: "generated in this page by onnxruntime-web",
    latentDim,
    takesDigits: info.digit_categories > 0,
    fromSeeds: (seeds) => fromLatents(latentsFromSeeds(seeds, latentDim)),
    fromDigits: (seeds, digits) => fromLatents(latentsForDigits(latentsFromSeeds(seeds, latentDim), digits, latentDim, info.digit_categories)),
    fromLatents,
  };
}

/** keras_dcgan.image_grid.to_uint8 exactly: float32 product, then round half to even as numpy does. */
function toUint8(value) {
  const scaled = Math.fround(Math.min(1, Math.max(0, value)) * 255);
  let rounded = Math.round(scaled);
  if (rounded - scaled === 0.5 && rounded % 2 === 1) rounded -= 1;
  return rounded;
}

/** The images tiled as keras_dcgan.image_grid.tile does (columns ceil(sqrt(n)), 2-pixel black gaps), one canvas pixel per image pixel. */
function drawImages(canvas, { count, height, width, pixels }, scale) {
  const columns = Math.ceil(Math.sqrt(count));
  canvas.width = columns * (width + PADDING) + PADDING;
  canvas.height = Math.ceil(count / columns) * (height + PADDING) + PADDING;
  const context = canvas.getContext("2d");
  const picture = context.createImageData(canvas.width, canvas.height);
  for (let offset = 3; offset < picture.data.length; offset += 4) picture.data[offset] = 255;
  for (let index = 0; index < count; index++) {
    const top = PADDING + Math.floor(index / columns) * (height + PADDING);
    const left = PADDING + (index % columns) * (width + PADDING);
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const value = toUint8(pixels[(index * height + y) * width + x]);
        const offset = ((top + y) * canvas.width + left + x) * 4;
        picture.data[offset] = picture.data[offset + 1] = picture.data[offset + 2] = value;
      }
    }
  }
  context.putImageData(picture, 0, 0);
  canvas.style.width = `${canvas.width * scale}px`;
}

function download(canvas, prefix) {
  if (!canvas.dataset.drawn) return showMessage("nothing is drawn yet to download");
  const name = `${prefix}-${canvas.dataset.drawn.replace(/\W+/g, "-")}.png`;
  canvas.toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  }, "image/png");
}

function parseSeed(text, what) {
  const trimmed = text.trim();
  if (!/^\d+$/.test(trimmed) || Number(trimmed) > MAX_SEED) {
    throw new RangeError(`${what} must be a whole number from 0 to ${MAX_SEED}, got "${text}"`);
  }
  return Number(trimmed);
}

function showMessage(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function showModel(info, backend) {
  const digits = backend.takesDigits ? `, takes digits 0-${info.digit_categories - 1}` : "";
  $("model").textContent = `${info.model_name} version ${info.version}: latent ${backend.latentDim}${digits}; ${backend.description}`;
  const figures = [];
  const quality = info.quality;
  const real = quality?.real_train_vs_test;
  if (quality?.fcd !== undefined) figures.push(["FCD", `${quality.fcd.toFixed(2)}${real ? ` (real data ${real.fcd.toFixed(2)})` : ""}`]);
  if (quality?.classifier_score !== undefined) {
    figures.push(["classifier score", `${quality.classifier_score.toFixed(2)}${real ? ` (real data ${real.classifier_score.toFixed(2)})` : ""}`]);
  }
  if (quality?.epoch !== undefined) figures.push(["at epoch", String(quality.epoch)]);
  if (info.asked_digits?.measured) figures.push(["asked digits drawn as asked", `${(100 * info.asked_digits.accuracy).toFixed(1)} %`]);
  if (!figures.length) figures.push(["quality", "none recorded (export a run trained with --eval-every)"]);
  $("quality").replaceChildren(...figures.flatMap(([name, value]) => {
    const term = document.createElement("dt");
    const detail = document.createElement("dd");
    term.textContent = name;
    detail.textContent = value;
    return [term, detail];
  }));
}

function digitOptions(categories) {
  for (let digit = 0; digit < categories; digit++) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="radio" name="digit" value="${digit}"> ${digit}`;
    $("digit-picker").append(label);
    for (const select of [$("walk-from-digit"), $("walk-to-digit")]) select.add(new Option(String(digit), String(digit)));
  }
  $("digit-picker").hidden = false;
  for (const label of document.querySelectorAll("label.digits")) label.hidden = false;
}

const optionalDigit = (value) => (value === "" ? null : Number(value));

function startPage(info, backend) {
  let gridRequest = 0;
  let walkRequest = 0;
  let walk = null; // {start, end, name}: the walk's two latents

  async function drawGrid() {
    const request = ++gridRequest;
    try {
      const count = Number($("count").value);
      const first = parseSeed($("seed").value, "first seed");
      if (first + count - 1 > MAX_SEED) throw new RangeError(`first seed must be at most ${MAX_SEED - count + 1} for ${count} digits, got ${first}`);
      const seeds = Array.from({ length: count }, (_, index) => first + index);
      const digit = optionalDigit(document.querySelector("input[name=digit]:checked").value);
      const started = performance.now();
      const images = digit === null ? await backend.fromSeeds(seeds) : await backend.fromDigits(seeds, seeds.map(() => digit));
      if (request !== gridRequest) return; // a newer request was made meanwhile
      const drawn = `seeds ${first}-${first + count - 1}${digit === null ? "" : `, digit ${digit}`}`;
      drawImages($("grid"), images, GRID_SCALE);
      $("grid").dataset.drawn = drawn;
      $("grid-status").textContent = `${drawn} in ${Math.round(performance.now() - started)} ms`;
      showMessage("");
    } catch (error) {
      if (request === gridRequest) showMessage(error.message);
    }
  }

  function walkEnd(seedId, digitId, what) {
    const seed = parseSeed($(seedId).value, what);
    const digit = backend.takesDigits ? optionalDigit($(digitId).value) : null;
    const latent = latentsFromSeeds([seed], backend.latentDim);
    return {
      latent: digit === null ? latent : latentsForDigits(latent, [digit], backend.latentDim, info.digit_categories),
      name: digit === null ? `seed ${seed}` : `seed ${seed} digit ${digit}`,
    };
  }

  async function drawWalk() {
    const request = ++walkRequest;
    try {
      if (walk === null) return;
      const step = Number($("walk").value);
      const steps = Number($("walk").max);
      const images = await backend.fromLatents(interpolate(walk.start, walk.end, step / steps));
      if (request !== walkRequest) return;
      drawImages($("walk-frame"), images, WALK_SCALE);
      $("walk-frame").dataset.drawn = `${walk.name} at ${step}/${steps}`;
      $("walk-position").textContent = `${step} / ${steps}`;
      showMessage("");
    } catch (error) {
      if (request === walkRequest) showMessage(error.message);
    }
  }

  function setWalk() {
    try {
      const from = walkEnd("walk-from", "walk-from-digit", "the walk's first seed");
      const to = walkEnd("walk-to", "walk-to-digit", "the walk's last seed");
      walk = { start: from.latent, end: to.latent, name: `${from.name} to ${to.name}` };
    } catch (error) {
      showMessage(error.message);
      return;
    }
    drawWalk();
  }

  $("grid-form").addEventListener("submit", (event) => { event.preventDefault(); drawGrid(); });
  $("count").addEventListener("change", drawGrid);
  $("digit-picker").addEventListener("change", drawGrid);
  $("reroll").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * (MAX_SEED - Number($("count").value) + 2)));
    drawGrid();
  });
  $("walk-form").addEventListener("submit", (event) => { event.preventDefault(); setWalk(); });
  $("walk").addEventListener("input", drawWalk);
  $("download-grid").addEventListener("click", () => download($("grid"), "digits"));
  $("download-walk").addEventListener("click", () => download($("walk-frame"), "walk"));
  drawGrid();
  setWalk();
}

async function main() {
  try {
    const info = await fetchJson("ui/model.json");
    const backend = await (info.backend === "onnx" ? onnxBackend(info) : restBackend(info));
    // For the browser console (and the tests): the page's own back end and latents.
    window.kerasDcgan = { info, backend, latentsFromSeeds, latentsForDigits, interpolate };
    showModel(info, backend);
    if (backend.takesDigits) digitOptions(info.digit_categories);
    startPage(info, backend);
    document.body.dataset.ready = "true";
  } catch (error) {
    showMessage(`cannot start: ${error.message}`);
  }
}

main();

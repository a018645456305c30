// The page of adcorre/serve/server.py: sends a picture (a file, or webcam frames) to POST /api/recognize and
// draws what comes back: a box and label per face on the picture, a bar per class per face.
// Plain browser JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

// Pause between two webcam frames, counted from the previous answer (one request in flight).
const FRAME_INTERVAL_MS = 300;
const WEBCAM_JPEG_QUALITY = 0.85;
const BOX_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4"];

const page = {
  fileInput: document.getElementById("file-input"),
  webcamButton: document.getElementById("webcam-button"),
  wholePicture: document.getElementById("whole-picture"),
  dropZone: document.getElementById("drop-zone"),
  dropHint: document.getElementById("drop-hint"),
  canvas: document.getElementById("picture"),
  video: document.getElementById("webcam"),
  status: document.getElementById("status"),
  faces: document.getElementById("faces"),
  modelName: document.getElementById("model-name"),
  modelInput: document.getElementById("model-input"),
  modelLabels: document.getElementById("model-labels"),
};

// Answers to anything but the latest request are dropped (a slow upload, an old frame).
let latestRequest = 0;
let webcam = null;  // {stream, timer, frame} while the webcam is on

function percent(probability) {
  return `${(100 * probability).toFixed(1)} %`;
}

function setStatus(message, isError = false) {
  page.status.textContent = message;
  page.status.classList.toggle("error", isError);
}

// ------------------------------------------------------------------------------ the model

async function loadModel() {
  try {
    const response = await fetch("/api/model");
    const model = await response.json();
    page.modelName.textContent = `${model.name} (${model.arch || "arch not recorded"}, ${model.kind})`;
    const [height, width] = model.input_size;
    const colour = model.channels === 1 ? "grey" : "RGB";
    page.modelInput.textContent =
      `${width} × ${height} ${colour}, face detector: ${model.detector || "none"}`;
    page.modelLabels.textContent = model.labels.join(", ");
  } catch (error) {
    page.modelName.textContent = "unknown";
    setStatus(`Could not read the model's description: ${error.message}`, true);
  }
}

// ------------------------------------------------------------------------------ recognition

async function recognize(blob, filename) {
  const form = new FormData();
  form.append("image", blob, filename);
  const whole = page.wholePicture.checked ? "1" : "0";
  let response;
  try {
    response = await fetch(`/api/recognize?whole=${whole}`, {method: "POST", body: form});
  } catch (error) {
    throw new Error(`The server did not answer (${error.message}); is it still running?`);
  }
  let answer;
  try {
    answer = await response.json();
  } catch {
    throw new Error(`The server answered ${response.status} without JSON.`);
  }
  if (!response.ok) {
    throw new Error(answer.error || `The server answered ${response.status}.`);
  }
  return answer;
}

function boxText(face) {
  if (!face.box) {
    return "whole picture (no face found)";
  }
  const [x, y, w, h] = face.box;
  return `box at (${x}, ${y}), ${w} × ${h} px`;
}

// Draws `source` (a bitmap or a canvas holding the frame that was sent) and the faces on it.
function drawPicture(source, answer) {
  const canvas = page.canvas;
  canvas.width = source.width;
  canvas.height = source.height;
  const context = canvas.getContext("2d");
  context.drawImage(source, 0, 0, canvas.width, canvas.height);
  // Boxes are in the pixels of the picture the server decoded (huge JPEGs are reduced).
  const scale = canvas.width / answer.width;
  const line = Math.max(2, Math.round(canvas.width / 250));
  const fontSize = Math.max(14, Math.round(canvas.width / 32));
  context.font = `bold ${fontSize}px system-ui, sans-serif`;
  context.textBaseline = "top";
  answer.faces.forEach((face, index) => {
    const colour = BOX_COLOURS[index % BOX_COLOURS.length];
    const [x, y, w, h] = face.box ? face.box.map((v) => v * scale) : [0, 0, canvas.width, canvas.height];
    context.lineWidth = line;
    context.strokeStyle = colour;
    context.strokeRect(x + line / 2, y + line / 2, w - line, h - line);
    const text = `${index + 1} ${face.label} ${percent(face.probabilities[face.label])}`;
    const textWidth = context.measureText(text).width + 2 * line;
    const textHeight = fontSize + 2 * line;
    // Above the box when there is room, else inside its top edge.
    const textY = y - textHeight >= 0 ? y - textHeight : y;
    context.fillStyle = colour;
    context.fillRect(x, textY, textWidth, textHeight);
    context.fillStyle = "#fff";
    context.fillText(text, x + line, textY + line);
  });
  const described = answer.faces.map((face, i) => `face ${i + 1}: ${face.label}`).join("; ");
  canvas.setAttribute("aria-label", `Picture ${answer.width} × ${answer.height} px; ` +
    (answer.faces.length ? described : "no face found"));
  canvas.hidden = false;
  page.dropHint.hidden = true;
}

function showFaces(answer) {
  page.faces.replaceChildren();
  if (!answer.faces.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = page.wholePicture.checked
      ? "No face found."
      : "No face found. Tick “No face found: classify the whole picture” to classify it anyway.";
    page.faces.append(empty);
    return;
  }
  answer.faces.forEach((face, index) => {
    const item = document.createElement("li");
    item.className = "face";
    item.dataset.label = face.label;
    item.dataset.box = face.box ? face.box.join(",") : "";
    item.style.setProperty("--face-colour", BOX_COLOURS[index % BOX_COLOURS.length]);

    const title = document.createElement("h3");
    title.className = "face-title";
    title.textContent = `Face ${index + 1}: ${face.label}, ${percent(face.probabilities[face.label])}`;
    const where = document.createElement("p");
    where.className = "face-box";
    where.textContent = boxText(face);

    const bars = document.createElement("ul");
    bars.className = "bars";
    bars.setAttribute("aria-label", `Probabilities of face ${index + 1}`);
    for (const [name, probability] of Object.entries(face.probabilities)) {
      bars.append(makeBar(name, probability, name === face.label));
    }
    item.append(title, where, bars);
    page.faces.append(item);
  });
}

function makeBar(name, probability, isTop) {
  const row = document.createElement("li");
  row.className = isTop ? "bar top" : "bar";
  // The exact number the API sent, for programs (and tests) reading the page.
  row.dataset.class = name;
  row.dataset.probability = String(probability);
  const label = document.createElement("span");
  label.className = "bar-name";
  label.textContent = name;
  const track = document.createElement("span");
  track.className = "bar-track";
  track.setAttribute("role", "meter");
  track.setAttribute("aria-label", name);
  track.setAttribute("aria-valuemin", "0");
  track.setAttribute("aria-valuemax", "100");
  track.setAttribute("aria-valuenow", (100 * probability).toFixed(1));
  track.setAttribute("aria-valuetext", percent(probability));
  const fill = document.createElement("span");
  fill.className = "bar-fill";
  fill.style.width = `${(100 * probability).toFixed(2)}%`;
  track.append(fill);
  const value = document.createElement("span");
  value.className = "bar-value";
  value.textContent = percent(probability);
  row.append(label, track, value);
  return row;
}

function summary(answer, started) {
  const count = answer.faces.length;
  const faces = count === 1 ? "1 face" : `${count} faces`;
  return `${faces} in ${Math.round(performance.now() - started)} ms.`;
}

// ------------------------------------------------------------------------------ a picture file

async function showFile(file) {
  stopWebcam();
  if (!file) {
    return;
  }
  const request = ++latestRequest;
  const started = performance.now();
  setStatus(`Recognising ${file.name}…`);
  // The browser turns the picture upright from its EXIF tag, as the server's reader does.
  const bitmap = await createImageBitmap(file).catch(() => null);
  try {
    const answer = await recognize(file, file.name);
    if (request !== latestRequest) {
      return;
    }
    if (bitmap) {
      drawPicture(bitmap, answer);
    }
    showFaces(answer);
    setStatus(`${file.name}: ${summary(answer, started)}`);
  } catch (error) {
    if (request === latestRequest) {
      // The previous picture and its faces would read as this file's answer: clear both.
      page.faces.replaceChildren();
      page.canvas.hidden = true;
      page.dropHint.hidden = false;
      setStatus(error.message, true);
    }
  }
}

page.fileInput.addEventListener("change", () => {
  showFile(page.fileInput.files[0]);
  page.fileInput.value = "";  // choosing the same file again is a new choice
});

page.dropZone.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") {
    event.preventDefault();
    page.fileInput.click();
  }
});

for (const type of ["dragenter", "dragover"]) {
  page.dropZone.addEventListener(type, (event) => {
    event.preventDefault();
    page.dropZone.classList.add("dragging");
  });
}
page.dropZone.addEventListener("dragleave", () => page.dropZone.classList.remove("dragging"));
page.dropZone.addEventListener("drop", (event) => {
  event.preventDefault();
  page.dropZone.classList.remove("dragging");
  showFile(event.dataTransfer.files[0]);
});
// A picture dropped beside the zone must not make the browser leave the page to show it.
for (const type of ["dragover", "drop"]) {
  window.addEventListener(type, (event) => event.preventDefault());
}

// ------------------------------------------------------------------------------ the webcam

function webcamError(error) {
  switch (error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return "Webcam access was denied. Allow it in the browser's address bar, or choose a picture.";
    case "NotFoundError":
    case "OverconstrainedError":
      return "No webcam was found. Choose a picture instead.";
    case "NotReadableError":
      return "The webcam is busy (another program is using it).";
    default:
      return `The webcam could not start (${error.name}: ${error.message}).`;
  }
}

async function startWebcam() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus(window.isSecureContext
      ? "This browser gives pages no webcam access. Choose a picture instead."
      : "Browsers allow the webcam only on https or on this computer's own address " +
        `(http://127.0.0.1:${location.port}/). Choose a picture instead.`, true);
    return;
  }
  setStatus("Asking for the webcam…");
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      video: {facingMode: "user", width: {ideal: 640}, height: {ideal: 480}}, audio: false,
    });
  } catch (error) {
    setStatus(webcamError(error), true);
    return;
  }
  page.video.srcObject = stream;
  try {
    await page.video.play();
  } catch (error) {
    stream.getTracks().forEach((track) => track.stop());
    setStatus(webcamError(error), true);
    return;
  }
  webcam = {stream, timer: null, frame: document.createElement("canvas")};
  page.webcamButton.textContent = "Stop the webcam";
  page.webcamButton.setAttribute("aria-pressed", "true");
  setStatus("Webcam on.");
  sendFrame();
}

function stopWebcam() {
  if (!webcam) {
    return;
  }
  clearTimeout(webcam.timer);
  webcam.stream.getTracks().forEach((track) => track.stop());
  page.video.srcObject = null;
  webcam = null;
  latestRequest += 1;  // a frame still on its way is not shown
  page.webcamButton.textContent = "Start the webcam";
  page.webcamButton.setAttribute("aria-pressed", "false");
  setStatus("Webcam off.");
}

async function sendFrame() {
  const current = webcam;
  if (!current) {
    return;
  }
  const video = page.video;
  if (video.videoWidth > 0) {
    // The frame that is sent is the one drawn, so the boxes fit it.
    const frame = current.frame;
    frame.width = video.videoWidth;
    frame.height = video.videoHeight;
    frame.getContext("2d").drawImage(video, 0, 0);
    const blob = await new Promise((resolve) => frame.toBlob(resolve, "image/jpeg", WEBCAM_JPEG_QUALITY));
    const request = ++latestRequest;
    const started = performance.now();
    try {
      const answer = await recognize(blob, "webcam.jpg");
      if (webcam === current && request === latestRequest) {
        drawPicture(frame, answer);
        showFaces(answer);
        setStatus(`Webcam: ${summary(answer, started)}`);
      }
    } catch (error) {
      if (webcam === current) {
        setStatus(error.message, true);
      }
    }
  }
  if (webcam === current) {
    current.timer = setTimeout(sendFrame, FRAME_INTERVAL_MS);
  }
}

page.webcamButton.addEventListener("click", () => (webcam ? stopWebcam() : startWebcam()));

loadModel();

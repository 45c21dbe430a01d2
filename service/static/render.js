// Drawing for the matteserve UI: marks (clicks, scribbles, boxes), gestures in progress,
// and the matte overlays. Coordinates come in image pixels and are mapped with ``toCanvas``
// to the canvas's backing pixels; ``px`` is backing pixels per image pixel, ``dpr`` the
// device pixel ratio (so that marker sizes are constant on screen).

const FG = "#22c55e";
const BG = "#ef4444";
const BOX = "#fbbf24";
const TINT = [109, 140, 255];

/** Distinct colours for people found by "All people". */
export const INSTANCE_COLOURS = [
  [255, 99, 132],
  [54, 162, 235],
  [255, 206, 86],
  [75, 192, 120],
  [153, 102, 255],
  [255, 159, 64],
  [0, 200, 200],
  [230, 90, 220],
];

/** A plain canvas of the given backing size. */
export function makeCanvas(width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = Math.max(1, width);
  canvas.height = Math.max(1, height);
  return canvas;
}

/** A canvas's pixels as a PNG Blob. */
export function canvasBlob(canvas) {
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("could not encode PNG"))), "image/png"),
  );
}

function alphaPixels(image, width, height) {
  const canvas = makeCanvas(width, height);
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.imageSmoothingQuality = "high";
  ctx.drawImage(image, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

/**
 * The overlay of one alpha matte at ``width`` x ``height``: the target tinted, the rest dimmed,
 * and a thin light line where alpha crosses one half. ``strength`` is in [0, 1].
 */
export function tintOverlay(alphaImage, width, height, strength) {
  const src = alphaPixels(alphaImage, width, height);
  const canvas = makeCanvas(width, height);
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(width, height);
  const d = out.data;
  const tint = strength * 0.55;
  const dim = strength * 0.85;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const a = src[i] / 255;
      const inside = a >= 0.5;
      const right = x + 1 < width ? src[i + 4] >= 128 : inside;
      const below = y + 1 < height ? src[i + width * 4] >= 128 : inside;
      if (inside !== right || inside !== below) {
        d[i] = d[i + 1] = d[i + 2] = 255;
        d[i + 3] = 230;
        continue;
      }
      const fg = a * tint;
      const bg = (1 - a) * dim;
      const total = fg + bg;
      if (total <= 0) continue;
      d[i] = (TINT[0] * fg) / total;
      d[i + 1] = (TINT[1] * fg) / total;
      d[i + 2] = (TINT[2] * fg) / total;
      d[i + 3] = total * 255;
    }
  }
  ctx.putImageData(out, 0, 0);
  return canvas;
}

/** The overlay of several people's mattes, each in its own colour; the rest dimmed. */
export function instancesOverlay(items, width, height, strength) {
  const n = width * height;
  const maxA = new Float32Array(n);
  const sum = new Float32Array(n);
  const rgb = new Float32Array(n * 3);
  for (const item of items) {
    const src = alphaPixels(item.image, width, height);
    const [r, g, b] = item.colour;
    for (let p = 0; p < n; p++) {
      const a = src[p * 4] / 255;
      if (a <= 0) continue;
      if (a > maxA[p]) maxA[p] = a;
      sum[p] += a;
      rgb[p * 3] += r * a;
      rgb[p * 3 + 1] += g * a;
      rgb[p * 3 + 2] += b * a;
    }
  }
  const canvas = makeCanvas(width, height);
  const ctx = canvas.getContext("2d");
  const out = ctx.createImageData(width, height);
  const d = out.data;
  const tint = strength * 0.75;
  const dim = strength * 0.85;
  for (let p = 0; p < n; p++) {
    const a = maxA[p];
    const fg = a * tint;
    const bg = (1 - a) * dim;
    const total = fg + bg;
    if (total <= 0) continue;
    const k = sum[p] > 0 ? fg / total / sum[p] : 0;
    d[p * 4] = rgb[p * 3] * k;
    d[p * 4 + 1] = rgb[p * 3 + 1] * k;
    d[p * 4 + 2] = rgb[p * 3 + 2] * k;
    d[p * 4 + 3] = total * 255;
  }
  ctx.putImageData(out, 0, 0);
  return canvas;
}

function clickMarker(ctx, cx, cy, label, dpr, alpha) {
  const r = 7.5 * dpr;
  ctx.save();
  ctx.globalAlpha = alpha;
  ctx.beginPath();
  ctx.arc(cx, cy, r + 2 * dpr, 0, Math.PI * 2);
  ctx.fillStyle = "rgba(0,0,0,.45)";
  ctx.fill();
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, Math.PI * 2);
  ctx.fillStyle = label === "bg" ? BG : FG;
  ctx.fill();
  ctx.lineWidth = 2 * dpr;
  ctx.strokeStyle = "#fff";
  ctx.stroke();
  ctx.beginPath();
  ctx.moveTo(cx - 3.5 * dpr, cy);
  ctx.lineTo(cx + 3.5 * dpr, cy);
  if (label !== "bg") {
    ctx.moveTo(cx, cy - 3.5 * dpr);
    ctx.lineTo(cx, cy + 3.5 * dpr);
  }
  ctx.stroke();
  ctx.restore();
}

function polyline(ctx, points, toCanvas) {
  ctx.beginPath();
  points.forEach(([x, y], i) => {
    const [cx, cy] = toCanvas(x, y);
    if (i === 0) ctx.moveTo(cx, cy);
    else ctx.lineTo(cx, cy);
  });
}

function scribbleStroke(ctx, points, label, width, dpr, alpha, dashed) {
  ctx.save();
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.globalAlpha = alpha;
  ctx.strokeStyle = label === "bg" ? BG : FG;
  ctx.lineWidth = Math.max(width, 2 * dpr);
  ctx.stroke();
  if (dashed) {
    ctx.globalAlpha = 0.9;
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.lineWidth = 1.5 * dpr;
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  }
  ctx.restore();
}

function boxShape(ctx, x0, y0, x1, y1, toCanvas, dpr, alpha, dashed, fill) {
  const [ax, ay] = toCanvas(x0, y0);
  const [bx, by] = toCanvas(x1, y1);
  ctx.save();
  ctx.globalAlpha = alpha;
  if (fill) {
    ctx.fillStyle = "rgba(251,191,36,.10)";
    ctx.fillRect(ax, ay, bx - ax, by - ay);
  }
  ctx.lineWidth = 3.5 * dpr;
  ctx.strokeStyle = "rgba(0,0,0,.45)";
  ctx.strokeRect(ax, ay, bx - ax, by - ay);
  ctx.lineWidth = 2 * dpr;
  ctx.strokeStyle = BOX;
  if (dashed) ctx.setLineDash([7 * dpr, 5 * dpr]);
  ctx.strokeRect(ax, ay, bx - ax, by - ay);
  ctx.setLineDash([]);
  ctx.fillStyle = BOX;
  const s = 5 * dpr;
  for (const [cx, cy] of [
    [ax, ay],
    [bx, ay],
    [ax, by],
    [bx, by],
  ]) {
    ctx.fillRect(cx - s / 2, cy - s / 2, s, s);
  }
  ctx.restore();
}

/** Draw a list of prompts; ``status`` is "sent", "inflight" or "pending" (shown dashed). */
export function drawMarks(ctx, prompts, toCanvas, px, dpr, status) {
  const pending = status === "pending";
  const alpha = status === "sent" ? 1 : 0.8;
  // scribbles and boxes first, clicks on top
  for (const p of prompts) {
    if (p.type === "scribble") {
      polyline(ctx, p.points, toCanvas);
      scribbleStroke(ctx, p.points, p.label, 2 * p.radius * px, dpr, pending ? 0.45 : 0.6, pending);
    } else if (p.type === "box") {
      boxShape(ctx, p.x0, p.y0, p.x1, p.y1, toCanvas, dpr, alpha, pending, false);
    }
  }
  for (const p of prompts) {
    if (p.type === "click") {
      const [cx, cy] = toCanvas(p.x, p.y);
      clickMarker(ctx, cx, cy, p.label, dpr, pending ? 0.7 : alpha);
    }
  }
}

/** Draw the gesture in progress: the rubber-band box, the scribble so far, the click to come. */
export function drawGesture(ctx, gesture, toCanvas, px, dpr, radius) {
  const label = gesture.tool.endsWith("bg") ? "bg" : "fg";
  if (gesture.tool === "box") {
    const [ax, ay] = gesture.start;
    const [bx, by] = gesture.last;
    boxShape(ctx, Math.min(ax, bx), Math.min(ay, by), Math.max(ax, bx), Math.max(ay, by), toCanvas, dpr, 1, true, true);
  } else if (gesture.tool.startsWith("scribble")) {
    polyline(ctx, gesture.points, toCanvas);
    scribbleStroke(ctx, gesture.points, label, 2 * radius * px, dpr, 0.6, false);
  } else {
    const [cx, cy] = toCanvas(...gesture.start);
    clickMarker(ctx, cx, cy, label, dpr, 0.8);
  }
}

/** The brush outline under the mouse for the scribble tools. */
export function drawBrushCursor(ctx, point, toCanvas, px, dpr, radius, label) {
  const [cx, cy] = toCanvas(...point);
  const r = Math.max(radius * px, 2 * dpr);
  ctx.save();
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, Math.PI * 2);
  ctx.lineWidth = 3 * dpr;
  ctx.strokeStyle = "rgba(0,0,0,.55)";
  ctx.stroke();
  ctx.lineWidth = 1.5 * dpr;
  ctx.strokeStyle = label === "bg" ? BG : FG;
  ctx.stroke();
  ctx.restore();
}

// The movielinks explorer: plain JavaScript over the HTTP gateway's JSON API (/openapi.json).
"use strict";

const NEIGHBOURS_K = 10;
const SHARED_LINKS = 4;
const SUGGESTIONS = 8;
const MAP_SAMPLE = 1500;
const SVG_NS = "http://www.w3.org/2000/svg";

const state = {
  selected: null,          // the resolved title shown
  neighbours: [],          // [{title, score, year, director, url, shared_links: [{name, score}]}]
  liked: new Set(),
  disliked: new Set(),
  years: new Map(),        // title -> year, from every answer that had one
  suggestions: [],
  active: -1,              // index of the highlighted suggestion
  searchSeq: 0, selectSeq: 0, recommendSeq: 0,
};

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

function status(text, isError = false) {
  const line = $("status");
  line.textContent = text;
  line.classList.toggle("error", isError);
}

function withToken(headers) {
  const token = $("token").value.trim() || sessionStorage.getItem("movielinks-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

async function api(rpc, body) {
  const headers = withToken({ "Content-Type": "application/json" });
  const response = await fetch(`/v1/${rpc}`, { method: "POST", headers, body: JSON.stringify(body) });
  const answer = await response.json().catch(() => ({ error: { message: `HTTP ${response.status}` } }));
  if (!response.ok) {
    if (response.status === 401) { $("token-box").hidden = false; $("token-box").open = true; }
    const error = new Error(answer.error ? answer.error.message : `HTTP ${response.status}`);
    error.status = response.status;
    throw error;
  }
  return answer;
}

async function get(path) {
  const response = await fetch(path, { headers: withToken({}) });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error ? answer.error.message : `HTTP ${response.status}`);
  return answer;
}

function yearText(year) { return year ? String(year) : "year unknown"; }

// --- search with autocomplete --------------------------------------------------------------------

let searchTimer = 0;

function onSearchInput() {
  clearTimeout(searchTimer);
  const text = $("search").value;
  if (!text.trim()) { closeSuggestions(); return; }
  searchTimer = setTimeout(() => suggest(text), 120);
}

async function suggest(text) {
  const seq = ++state.searchSeq;
  try {
    const answer = await api("search-names", { text, kind: "MOVIES", limit: SUGGESTIONS });
    if (seq !== state.searchSeq) return;  // a later keystroke has its own answer coming
    showSuggestions(answer.names, answer.total);
  } catch (error) {
    if (seq === state.searchSeq) { closeSuggestions(); status(error.message, true); }
  }
}

function showSuggestions(names, total) {
  const list = $("suggestions");
  state.suggestions = names;
  state.active = -1;
  list.replaceChildren(...names.map((name, i) => el("li", {
    id: `suggestion-${i}`, role: "option", "aria-selected": "false",
    onmousedown: (event) => { event.preventDefault(); pick(name); },
  }, name)));
  const open = names.length > 0;
  list.hidden = !open;
  $("search").setAttribute("aria-expanded", String(open));
  $("search").removeAttribute("aria-activedescendant");
  status(open ? `${total} title${total === 1 ? "" : "s"} match; ${names.length} shown` : "no title matches");
}

function closeSuggestions() {
  $("suggestions").hidden = true;
  $("search").setAttribute("aria-expanded", "false");
  $("search").removeAttribute("aria-activedescendant");
  state.active = -1;
}

function moveActive(step) {
  const n = state.suggestions.length;
  if (!n || $("suggestions").hidden) return;
  state.active = (state.active + step + n) % n;
  [...$("suggestions").children].forEach((item, i) => item.setAttribute("aria-selected", String(i === state.active)));
  const item = $(`suggestion-${state.active}`);
  $("search").setAttribute("aria-activedescendant", item.id);
  item.scrollIntoView({ block: "nearest" });
}

function onSearchKey(event) {
  if (event.key === "ArrowDown") { event.preventDefault(); moveActive(1); }
  else if (event.key === "ArrowUp") { event.preventDefault(); moveActive(-1); }
  else if (event.key === "Escape") { closeSuggestions(); }
  else if (event.key === "Enter") {
    event.preventDefault();
    // A highlighted suggestion is a choice; otherwise the typed text is resolved as LookupTitle
    // resolves it ("godfather": The Godfather), not replaced by the first suggestion.
    const open = !$("suggestions").hidden && state.active >= 0;
    const chosen = open ? state.suggestions[state.active] : $("search").value;
    if (chosen.trim()) pick(chosen);
  }
}

function pick(title) {
  clearTimeout(searchTimer);
  state.searchSeq++;  // a suggestion list still on its way is no longer wanted
  closeSuggestions();
  select(title);
}

// --- the selected movie and its neighbours -------------------------------------------------------

async function select(title) {
  const seq = ++state.selectSeq;
  status(`looking up ${title}…`);
  try {
    const found = await api("similar-movies", { title, k: NEIGHBOURS_K, reasons: SHARED_LINKS });
    if (seq !== state.selectSeq) return;
    const answer = { ...found, neighbours: (found.neighbours || []).map((n) => ({
      title: n.name, score: n.score, year: n.year, director: n.director, url: n.url,
      shared_links: (n.reasons || []).map((r) => ({ name: r.link, score: r.contribution })) })) };
    state.selected = answer.query;
    state.neighbours = answer.neighbours;
    state.years.set(answer.query, answer.query_year);
    for (const n of answer.neighbours) state.years.set(n.title, n.year);
    $("search").value = answer.query;
    history.replaceState(null, "", `#movie=${encodeURIComponent(answer.query)}`);
    renderNeighbours(answer);
    status(`${answer.neighbours.length} movies nearest to ${answer.query} (index ${answer.index_version})`);
    drawMap();
  } catch (error) {
    if (seq !== state.selectSeq) return;
    clearSelection();
    status(error.message, true);
    offerChoices(error.message);
  }
}

// "unknown movie 'Jurassic': ...; did you mean: A; B" -> A and B as buttons that pick them.
function offerChoices(message) {
  const at = message.indexOf("did you mean: ");
  if (at < 0) return;
  const titles = message.slice(at + "did you mean: ".length).split("; ");
  $("status").replaceChildren(message.slice(0, at) + "did you mean: ", ...titles.flatMap((title, i) => [
    ...(i ? ["; "] : []), el("button", { class: "title choice", type: "button", onclick: () => pick(title) }, title)]));
}

// The answer on screen is for the film asked last: an unknown title leaves no other film's answer behind.
function clearSelection() {
  state.selected = null;
  state.neighbours = [];
  history.replaceState(null, "", location.pathname);
  $("selected").hidden = true;
  $("neighbours").replaceChildren();
  $("neighbours-empty").hidden = false;
  drawMap();
}

function tickPair(title) {
  const like = el("input", { type: "checkbox", "aria-label": `like ${title}` });
  const dislike = el("input", { type: "checkbox", "aria-label": `dislike ${title}` });
  like.checked = state.liked.has(title);
  dislike.checked = state.disliked.has(title);
  like.addEventListener("change", () => setOpinion(title, like.checked ? "liked" : null));
  dislike.addEventListener("change", () => setOpinion(title, dislike.checked ? "disliked" : null));
  return [el("label", { class: "tick like" }, like, " like"), el("label", { class: "tick dislike" }, dislike, " dislike")];
}

function renderNeighbours(answer) {
  $("neighbours-empty").hidden = true;
  $("selected").hidden = false;
  $("selected-title").textContent = `${answer.query} · ${yearText(answer.query_year)}`;
  const [like, dislike] = tickPair(answer.query);
  $("selected").replaceChildren($("selected-title"), like, dislike);
  $("neighbours").replaceChildren(...answer.neighbours.map((n, i) => el("li", { "data-title": n.title },
    el("div", { class: "row" },
      el("span", { class: "rank" }, `${i + 1}.`),
      el("button", { class: "title", type: "button", onclick: () => select(n.title) }, n.title),
      el("span", { class: "year" }, yearText(n.year)),
      el("span", { class: "score", title: "cosine similarity" },
        el("span", { class: "bar", style: `width:${Math.max(2, Math.round(60 * Math.max(0, n.score)))}px` }),
        `cosine ${n.score.toFixed(3)}`)),
    el("div", { class: "shared" }, el("span", { class: "label" }, "shared links:"),
      ...n.shared_links.map((l) => el("span", { class: "chip", title: answer.reasons_basis === "article_links"
        ? `both articles link here; its share of their link-overlap cosine: ${l.score.toFixed(3)}`
        : `the smaller cosine of the two movies to this link: ${l.score.toFixed(3)}` }, l.name))),
    el("div", { class: "ticks" }, ...tickPair(n.title)))));
}

// --- likes, dislikes and recommendations ---------------------------------------------------------

function setOpinion(title, opinion) {
  state.liked.delete(title);
  state.disliked.delete(title);
  if (opinion === "liked") state.liked.add(title);
  if (opinion === "disliked") state.disliked.add(title);
  syncTicks();
  renderPicks();
  recommend();
  drawMap();
}

function syncTicks() {
  for (const input of document.querySelectorAll(".tick input")) {
    const [verb, ...rest] = input.getAttribute("aria-label").split(" ");
    const title = rest.join(" ");
    input.checked = (verb === "like" ? state.liked : state.disliked).has(title);
  }
}

function renderPicks() {
  const chips = [];
  for (const [set, kind] of [[state.liked, "liked"], [state.disliked, "disliked"]]) {
    for (const title of set) {
      chips.push(el("span", { class: `chip ${kind}` }, `${kind === "liked" ? "♥" : "✕"} ${title}`,
        el("button", { type: "button", "aria-label": `forget ${kind} ${title}`, onclick: () => setOpinion(title, null) }, "×")));
    }
  }
  $("picks").replaceChildren(...chips);
}

async function recommend() {
  const seq = ++state.recommendSeq;
  if (!state.liked.size) {
    $("recommendations").replaceChildren();
    $("recommend-empty").hidden = false;
    $("recommend-meaning").hidden = true;
    showJump();
    return;
  }
  try {
    const answer = await api("recommend", { liked: [...state.liked], disliked: [...state.disliked], k: 10 });
    if (seq !== state.recommendSeq) return;
    $("recommend-empty").hidden = true;
    $("recommend-meaning").hidden = !answer.score_meaning;
    $("recommend-meaning").textContent = answer.score_meaning ? `Score: ${answer.score_meaning}` : "";
    $("recommendations").replaceChildren(...answer.best.map((m, i) => el("li", { "data-title": m.title },
      el("span", { class: "rank" }, `${i + 1}.`),
      el("button", { class: "title", type: "button", onclick: () => select(m.title) }, m.title),
      el("span", { class: "year" }, yearText(m.year)),
      el("span", { class: "decision", title: answer.score_meaning || "the recommendation's score" },
        m.decision_value.toFixed(2)))));
    showJump();
    status(`recommendations from ${state.liked.size} liked and ${state.disliked.size} disliked`);
  } catch (error) {
    if (seq === state.recommendSeq) status(error.message, true);
  }
}

let recommendationsInView = false;

// The "recommendations" button (phone width only, see the CSS) while they exist and are off screen.
function showJump() {
  const n = $("recommendations").children.length;
  $("to-recommendations").textContent = `↓ ${n} recommendation${n === 1 ? "" : "s"}`;
  $("to-recommendations").hidden = !n || recommendationsInView;
}

// --- the map -------------------------------------------------------------------------------------

let mapSeq = 0;
let clusters = null;  // {index_version, clusters: [{name, x, y, size}], of_sample: [cluster per sampled movie]}

// The map's regions named by their links, as `trainer plot` names them (GET /explorer/map-clusters).
async function mapClusters(indexVersion) {
  if (clusters && clusters.index_version === indexVersion) return clusters;
  try {
    const found = await get(`/explorer/map-clusters?sample=${MAP_SAMPLE}`);
    clusters = found.index_version === indexVersion ? found : null;
  } catch (error) {
    clusters = null;  // the map still shows, unlabelled
  }
  return clusters;
}

function clusterLabels(named, place) {
  const taken = [];
  const labels = [];
  for (const [c, cluster] of named.clusters.entries()) {
    let [x, y] = place(cluster);
    const width = 1.45 * cluster.name.length, height = 3.2;
    x = Math.min(Math.max(x, width / 2 + 1), 99 - width / 2);
    // Centres of clusters can sit close on two components: a label that would cover another moves down.
    for (let tries = 0; tries < 8 && taken.some((t) => Math.abs(t.x - x) < (t.width + width) / 2
      && Math.abs(t.y - y) < height); tries++) y += height;
    y = Math.min(Math.max(y, 3), 98);
    taken.push({ x, y, width });
    const label = svg("text", { x: x.toFixed(2), y: y.toFixed(2), class: `cluster-label c${c}`, "text-anchor": "middle" });
    label.textContent = cluster.name;
    labels.push(label);
  }
  return labels;
}

function renderLegend(named) {
  $("map-legend").replaceChildren(...(named ? named.clusters : []).map((cluster, c) => el("li", {},
    el("span", { class: `key c${c}` }), ` ${cluster.name} (${cluster.size})`)));
}

async function drawMap() {
  const seq = ++mapSeq;
  const highlighted = [...new Set([...(state.selected ? [state.selected] : []), ...state.neighbours.map((n) => n.title),
    ...state.liked])];
  let answer;
  try {
    answer = await api("movie-map", { titles: highlighted, sample: MAP_SAMPLE });
  } catch (error) {
    if (seq === mapSeq) status(error.message, true);
    return;
  }
  const named = await mapClusters(answer.index_version);
  if (seq !== mapSeq) return;
  const clusterOf = new Map(named ? answer.sample.map((p, i) => [p.title, named.of_sample[i]]) : []);
  const all = [...answer.sample, ...answer.titles];
  const xs = all.map((p) => p.x), ys = all.map((p) => -p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const span = Math.max(x1 - x0, y1 - y0) || 1;
  const scale = 92 / span;
  const place = (p) => [4 + (p.x - x0) * scale + (92 - (x1 - x0) * scale) / 2,
    4 + (-p.y - y0) * scale + (92 - (y1 - y0) * scale) / 2];
  const map = $("map");
  const neighbours = new Set(state.neighbours.map((n) => n.title));
  const kindOf = (title) => title === state.selected ? "sel" : state.liked.has(title) ? "liked"
    : neighbours.has(title) ? "nb" : "bg";
  const radius = { bg: 0.7, nb: 1.5, liked: 1.6, sel: 2.2 };
  const dots = [];
  const ordered = [...answer.sample.filter((p) => !highlighted.includes(p.title)),
    ...answer.titles.slice().sort((a, b) => "bg nb liked sel".indexOf(kindOf(a.title)) - "bg nb liked sel".indexOf(kindOf(b.title)))];
  for (const p of ordered) {
    const [cx, cy] = place(p);
    const kind = answer.titles.includes(p) ? kindOf(p.title) : "bg";
    const cluster = kind === "bg" && clusterOf.has(p.title) ? ` c${clusterOf.get(p.title)}` : "";
    const dot = svg("circle", { cx: cx.toFixed(2), cy: cy.toFixed(2), r: radius[kind], class: kind + cluster,
      "data-title": p.title });
    const tip = svg("title");
    tip.textContent = p.year ? `${p.title} (${p.year})` : p.title;
    dot.append(tip);
    dots.push(dot);
  }
  const labels = named ? clusterLabels(named, place) : [];
  const chosen = answer.titles.find((p) => p.title === state.selected);
  if (chosen) {
    const [cx, cy] = place(chosen);
    const label = svg("text", { x: Math.min(cx + 2.5, 70).toFixed(2), y: (cy - 2.5).toFixed(2), id: "map-selected-label" });
    label.textContent = chosen.title;
    labels.push(label);
  }
  map.replaceChildren(...dots, ...labels);
  renderLegend(named);
  map.setAttribute("aria-label", `Map: ${answer.sample.length} sampled movies` +
    (named ? `, in ${named.clusters.length} clusters: ${named.clusters.map((c) => c.name).join("; ")}` : "") +
    (chosen ? `, ${chosen.title} highlighted` : ""));
}

function onMapHover(event) {
  const hover = $("map-hover");
  const dot = event.target.closest("circle");
  for (const old of document.querySelectorAll("#map .hovered")) old.classList.remove("hovered");
  if (!dot) { hover.hidden = true; return; }
  dot.classList.add("hovered");
  hover.textContent = dot.querySelector("title").textContent;
  const box = $("map-wrap").getBoundingClientRect();
  const at = dot.getBoundingClientRect();
  hover.style.left = `${at.left + at.width / 2 - box.left}px`;
  hover.style.top = `${at.top - box.top}px`;
  hover.hidden = false;
}

// --- start ---------------------------------------------------------------------------------------

async function start() {
  $("search").addEventListener("input", onSearchInput);
  $("search").addEventListener("keydown", onSearchKey);
  $("search").addEventListener("blur", () => setTimeout(closeSuggestions, 150));
  $("token").value = sessionStorage.getItem("movielinks-token") || "";
  $("token").addEventListener("change", () => sessionStorage.setItem("movielinks-token", $("token").value.trim()));
  new IntersectionObserver((entries) => {
    recommendationsInView = entries.some((entry) => entry.isIntersecting);
    showJump();
  }).observe($("recommend-heading").parentElement);
  $("map").addEventListener("mousemove", onMapHover);
  $("map").addEventListener("mouseleave", () => { $("map-hover").hidden = true; });
  $("map").addEventListener("click", (event) => {
    const dot = event.target.closest("circle");
    if (dot) select(dot.dataset.title);
  });
  try {
    // The token box only where the server asks for a token.
    $("token-box").hidden = !(await get("/explorer/config")).token_required;
  } catch (error) {
    $("token-box").hidden = false;
  }
  try {
    const info = await api("get-info", {});
    $("about").textContent = `${info.movies.toLocaleString()} movies and ${info.links.toLocaleString()} links, ` +
      `${info.dim} dimensions · index ${info.index_version} · server ${info.server_version}`;
  } catch (error) {
    status(error.message, true);
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("movie");
  if (wanted) select(wanted); else drawMap();
}

document.addEventListener("DOMContentLoaded", start);

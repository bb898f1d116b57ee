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
  selectSeq: 0, recommendSeq: 0,
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

// A text box whose suggestions are SearchNames' names of `kind` ("MOVIES" or "LINKS"), in `list`. Enter
// takes what was typed (the server resolves it); arrow keys and Enter, or a click, take a suggestion.
function combobox({ input, list, kind, noun, idPrefix, onPick, counts = true }) {
  const box = { names: [], active: -1, seq: 0, timer: 0 };
  const close = () => {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    box.active = -1;
  };
  const pick = (name) => {
    clearTimeout(box.timer);
    box.seq++;  // a suggestion list still on its way is no longer wanted
    close();
    onPick(name);
  };
  const show = (names, total) => {
    box.names = names;
    box.active = -1;
    list.replaceChildren(...names.map((name, i) => el("li", {
      id: `${idPrefix}-${i}`, role: "option", "aria-selected": "false",
      onmousedown: (event) => { event.preventDefault(); pick(name); },
    }, name)));
    const open = names.length > 0;
    list.hidden = !open;
    input.setAttribute("aria-expanded", String(open));
    input.removeAttribute("aria-activedescendant");
    if (counts) status(open ? `${total} ${noun}${total === 1 ? "" : "s"} match; ${names.length} shown` : `no ${noun} matches`);
  };
  const suggest = async (text) => {
    const seq = ++box.seq;
    try {
      const answer = await api("search-names", { text, kind, limit: SUGGESTIONS });
      if (seq === box.seq) show(answer.names, answer.total);  // else a later keystroke has its own answer coming
    } catch (error) {
      if (seq === box.seq) { close(); status(error.message, true); }
    }
  };
  const move = (step) => {
    const n = box.names.length;
    if (!n || list.hidden) return;
    box.active = (box.active + step + n) % n;
    [...list.children].forEach((item, i) => item.setAttribute("aria-selected", String(i === box.active)));
    const item = $(`${idPrefix}-${box.active}`);
    input.setAttribute("aria-activedescendant", item.id);
    item.scrollIntoView({ block: "nearest" });
  };
  input.addEventListener("input", () => {
    clearTimeout(box.timer);
    const text = input.value;
    if (!text.trim()) { close(); return; }
    box.timer = setTimeout(() => suggest(text), 120);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown") { event.preventDefault(); move(1); }
    else if (event.key === "ArrowUp") { event.preventDefault(); move(-1); }
    else if (event.key === "Escape") { close(); }
    else if (event.key === "Enter") {
      event.preventDefault();
      // A highlighted suggestion is a choice; otherwise the typed text is resolved as the server resolves
      // it ("godfather": The Godfather), not replaced by the first suggestion.
      const chosen = !list.hidden && box.active >= 0 ? box.names[box.active] : input.value;
      if (chosen.trim()) pick(chosen);
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 150));
  return { pick };
}

let movieBox = null;

function pick(title) { movieBox.pick(title); }

// --- the selected movie and its neighbours -------------------------------------------------------

async function select(title) {
  const seq = ++state.selectSeq;
  status(`looking up ${title}…`);
  try {
    const found = await api("similar-movies", { title, k: NEIGHBOURS_K, reasons: SHARED_LINKS });
    if (seq !== state.selectSeq) return;
    const answer = { ...found, neighbours: shownMovies(found) };
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

// A movie of an answer as a list item: rank, title (click: select it), year, cosine, shared links, like/dislike.
function movieItem(n, i, basis) {
  return el("li", { "data-title": n.title },
    el("div", { class: "row" },
      el("span", { class: "rank" }, `${i + 1}.`),
      el("button", { class: "title", type: "button", onclick: () => select(n.title) }, n.title),
      el("span", { class: "year" }, yearText(n.year)),
      el("span", { class: "score", title: "cosine similarity" },
        el("span", { class: "bar", style: `width:${Math.max(2, Math.round(60 * Math.max(0, n.score)))}px` }),
        `cosine ${n.score.toFixed(3)}`)),
    // No "shared links:" label over nothing: a film can be near without sharing any.
    ...(n.shared_links.length ? [el("div", { class: "shared" }, el("span", { class: "label" }, "shared links:"),
      ...n.shared_links.map((l) => el("span", { class: "chip", title: basis === "article_links"
        ? `both articles link here; its share of their link-overlap cosine: ${l.score.toFixed(3)}`
        : `the smaller cosine of the two movies to this link: ${l.score.toFixed(3)}` }, l.name)))] : []),
    el("div", { class: "ticks" }, ...tickPair(n.title)));
}

// An answer's movies as the explorer shows them (title, score, year, director, url, shared_links).
function shownMovies(found) {
  return (found.neighbours || []).map((n) => ({
    title: n.name, score: n.score, year: n.year, director: n.director, url: n.url,
    shared_links: (n.reasons || []).map((r) => ({ name: r.link, score: r.contribution })) }));
}

function renderNeighbours(answer) {
  $("neighbours-empty").hidden = true;
  $("selected").hidden = false;
  $("selected-title").textContent = `${answer.query} · ${yearText(answer.query_year)}`;
  const [like, dislike] = tickPair(answer.query);
  $("selected").replaceChildren($("selected-title"), like, dislike);
  $("neighbours").replaceChildren(...answer.neighbours.map((n, i) => movieItem(n, i, answer.reasons_basis)));
}

// --- films like a set of links (SimilarToLinks: a film the index may never have seen, folded in) ---

const linkFilms = { links: [], unknown: new Set(), seq: 0 };

function addLink(name) {
  const typed = name.trim();
  $("link-search").value = "";
  if (!typed || linkFilms.links.some((l) => l.toLowerCase() === typed.toLowerCase())) return;
  linkFilms.links.push(typed);
  filmsLikeLinks();
}

function removeLink(name) {
  linkFilms.links = linkFilms.links.filter((l) => l !== name);
  filmsLikeLinks();
}

function renderLinkSet() {
  $("link-set").replaceChildren(...linkFilms.links.map((name) => {
    const ignored = linkFilms.unknown.has(name);
    return el("li", { class: ignored ? "chip unknown" : "chip", "data-link": name,
      title: ignored ? "not a link of this index: ignored" : "a link of the film" }, el("span", { class: "name" }, name),
      el("button", { type: "button", "aria-label": `remove ${name}`, onclick: () => removeLink(name) }, "×"));
  }));
}

function linksMessage(text, kind = "") {
  $("links-message").textContent = text;
  $("links-message").className = kind;
}

function clearLinkFilms() {
  $("link-films").replaceChildren();
  $("links-meaning").hidden = true;
  $("links-ignored").hidden = true;
}

async function filmsLikeLinks() {
  const seq = ++linkFilms.seq;
  linkFilms.unknown = new Set([...linkFilms.unknown].filter((l) => linkFilms.links.includes(l)));
  renderLinkSet();
  if (!linkFilms.links.length) {
    clearLinkFilms();
    linksMessage(LINKS_HINT, "muted");
    return;
  }
  try {
    const answer = await api("similar-to-links", { links: linkFilms.links, k: NEIGHBOURS_K, reasons: SHARED_LINKS });
    if (seq !== linkFilms.seq) return;
    showLinkFilms(answer);
  } catch (error) {
    if (seq !== linkFilms.seq) return;
    clearLinkFilms();  // the answer on screen is for the links shown, or there is none
    // INVALID_ARGUMENT "none of the N links of links is a link of index version ...": said for people.
    if (error.status === 400 && error.message.startsWith("none of the")) {
      linkFilms.unknown = new Set(linkFilms.links);
      renderLinkSet();
      linksMessage(`None of ${linkFilms.links.length === 1 ? "this link is" : `these ${linkFilms.links.length} links is`} ` +
        "known to the index, so there is no film to compare. Pick names from the suggestions.", "error");
    } else {
      linksMessage(error.message, "error");
    }
  }
}

function showLinkFilms(answer) {
  const movies = shownMovies(answer);
  // The links as the index spells them ("link 7": Link 7); those it does not know stay as typed.
  const unknown = new Set(answer.unknown_links || []);
  const known = [...(answer.query_links || [])];
  linkFilms.links = linkFilms.links.map((name) => unknown.has(name) ? name : known.shift() || name);
  linkFilms.unknown = unknown;
  renderLinkSet();
  for (const n of movies) state.years.set(n.title, n.year);
  $("link-films").replaceChildren(...movies.map((n, i) => movieItem(n, i, answer.reasons_basis)));
  $("links-meaning").hidden = false;
  $("links-ignored").hidden = !unknown.size;
  $("links-ignored").textContent = unknown.size
    ? `Ignored, not links of this index: ${[...unknown].join(", ")}` : "";
  const n = answer.query_links.length;
  linksMessage(`${movies.length} films nearest to a film linking to ${n === 1 ? "this link" : `these ${n} links`} ` +
    `(index ${answer.index_version})`, "muted");
}

const LINKS_HINT = "Add a few links (a director, a genre, a composer) to see the films nearest to a film with " +
  "those links: one the index may never have seen, fitted to them as the model was trained.";

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

// `avoid`: boxes ({x: centre, y: baseline, width, height}) the labels must not cover (the selected film's label).
function clusterLabels(named, place, avoid = []) {
  const taken = [...avoid];
  const labels = [];
  for (const [c, cluster] of named.clusters.entries()) {
    let [x, y] = place(cluster);
    const width = 1.45 * cluster.name.length, height = 3.2;
    x = Math.min(Math.max(x, width / 2 + 1), 99 - width / 2);
    // Centres of clusters can sit close on two components: a label that would cover another moves down.
    for (let tries = 0; tries < 8 && taken.some((t) => Math.abs(t.x - x) < (t.width + width) / 2
      && Math.abs(t.y - y) < (t.height + height) / 2); tries++) y += height;
    y = Math.min(Math.max(y, 3), 98);
    taken.push({ x, y, width, height });
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
  const chosen = answer.titles.find((p) => p.title === state.selected);
  const [cx, cy] = chosen ? place(chosen) : [0, 0];
  // The selected film's label: its letters are about 1.8 units wide, its line box (3.2px bold, white
  // outline) 6.4 high. It starts right of the dot, or ends left of it where the map's right edge would cut it.
  const width = chosen ? 1.8 * chosen.title.length : 0;
  const lx = cx + 2.5 + width <= 98 ? cx + 2.5 : Math.max(2, cx - 2.5 - width);
  const ly = cy - 2.5;
  const avoid = chosen ? [{ x: lx + width / 2, y: ly, width, height: 6.4 }] : [];  // the cluster labels keep clear
  const labels = named ? clusterLabels(named, place, avoid) : [];
  if (chosen) {
    const label = svg("text", { x: lx.toFixed(2), y: ly.toFixed(2), id: "map-selected-label" });
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
  movieBox = combobox({ input: $("search"), list: $("suggestions"), kind: "MOVIES", noun: "title",
    idPrefix: "suggestion", onPick: select });
  combobox({ input: $("link-search"), list: $("link-suggestions"), kind: "LINKS", noun: "link",
    idPrefix: "link-suggestion", onPick: addLink, counts: false });  // the page's status line is the movie's
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

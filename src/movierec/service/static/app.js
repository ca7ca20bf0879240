// movierec's page: find movies, rate them, and show what the service recommends for them.
// Everything a person chose lives in the URL (?like=2571,260&dislike=296), so a link
// reproduces the page. Features the service may not have yet (GET /models, GET /genres, "why")
// are detected, never assumed.

const TUTORIAL = {
  likes: [2571, 329, 260, 1, 356, 2116],
  dislikes: [2288, 1721, 296, 1291, 1036],
  limit: 5,
  model: "tutorial",
};
const DEFAULT_LIMIT = 10;
const LIMITS = [5, 10, 20];
const MAX_RATINGS = 1000;
const SEARCH_LIMIT = 8;
const POPULAR_LIMIT = 12; // the strip of popular movies to start from, before anything is rated
const SIMILAR_LIMIT = 5; // "More like this" under a recommendation
const RETRY_SECONDS = 5;
// From how many stars a rating is a like: the service says (GET /models, "liked_stars"); this
// is the library's value, for a service that does not say.
const LIKED_STARS = 3;
const STARS_FROM_UNIT = { 1: 5, [-1]: 1 };
const STAR_CHOICES = [5, 4.5, 4, 3.5, 3, 2.5, 2, 1.5, 1, 0.5];

const state = {
  scale: "unit", // "unit": +1 like / -1 dislike; "stars": 1-5
  ratings: new Map(), // movie id -> rating, in the order the person rated them
  model: null, // null: the service's default
  genres: [],
  yearMin: null,
  yearMax: null,
  limit: DEFAULT_LIMIT,
};
// What the service offers; null until known, false when it has no such route.
const service = { models: null, genres: null };
const movies = new Map(); // movie id -> movie from the API, or false when it does not exist

const $ = (id) => document.getElementById(id);
const ui = {};

// --- the URL is the state ---------------------------------------------------------------------

function readUrl() {
  const q = new URLSearchParams(location.search);
  const ids = (text) => (text || "").split(",").filter((s) => /^\d{1,10}$/.test(s)).map(Number);
  state.ratings = new Map();
  if (q.has("stars")) {
    state.scale = "stars";
    for (const pair of q.get("stars").split(",")) {
      const [id, stars] = pair.split(":");
      const value = Math.round(Number(stars) * 2) / 2; // half stars, as Letterboxd rates
      if (/^\d{1,10}$/.test(id) && value >= 0.5 && value <= 5) state.ratings.set(Number(id), value);
    }
  } else {
    state.scale = "unit";
    for (const id of ids(q.get("like"))) state.ratings.set(id, 1);
    for (const id of ids(q.get("dislike"))) state.ratings.set(id, -1);
  }
  while (state.ratings.size > MAX_RATINGS) state.ratings.delete(state.ratings.keys().next().value);
  state.model = q.get("model") || null;
  state.genres = (q.get("genres") || "").split(",").filter(Boolean);
  const year = (name) => (/^\d{4}$/.test(q.get(name) || "") ? Number(q.get(name)) : null);
  state.yearMin = year("from");
  state.yearMax = year("to");
  const limit = Number(q.get("limit"));
  state.limit = LIMITS.includes(limit) ? limit : DEFAULT_LIMIT;
}

// Commas and colons are legal in a query: keep the link readable (?stars=2571:5,296:1).
const encode = (value) => encodeURIComponent(value).replace(/%3A/gi, ":");

function writeUrl() {
  const parts = [];
  const add = (name, values) => {
    if (values.length) parts.push(`${name}=${values.map(encode).join(",")}`);
  };
  const entries = [...state.ratings];
  if (state.scale === "stars") {
    add("stars", entries.map(([id, v]) => `${id}:${v}`));
  } else {
    add("like", entries.filter(([, v]) => v > 0).map(([id]) => id));
    add("dislike", entries.filter(([, v]) => v < 0).map(([id]) => id));
  }
  if (state.model) add("model", [state.model]);
  add("genres", state.genres);
  if (state.yearMin !== null) add("from", [state.yearMin]);
  if (state.yearMax !== null) add("to", [state.yearMax]);
  if (state.limit !== DEFAULT_LIMIT) add("limit", [state.limit]);
  const query = parts.length ? `?${parts.join("&")}` : location.pathname;
  history.replaceState(null, "", query);
}

// --- talking to the service -------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.status = status;
    this.field = field;
  }
}

async function api(path, { body, signal } = {}) {
  let response;
  try {
    response = await fetch(path, {
      method: body ? "POST" : "GET",
      headers: body ? { "Content-Type": "application/json" } : {},
      body: body ? JSON.stringify(body) : undefined,
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "cannot reach the service");
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    // not JSON: a proxy's error page, say; the status line is all there is to show
  }
  if (!response.ok) {
    const message = data && typeof data.error === "string" ? data.error : `HTTP ${response.status}`;
    throw new ApiError(response.status, message, data && data.field);
  }
  return data;
}

// One line a person can act on, for every way a call can fail.
function explain(error, doing) {
  if (error.status === 0) return `Cannot reach the service: is it running? The page retries every ${RETRY_SECONDS} seconds.`;
  if (error.status === 503) return `The service is not ready: ${error.message}. The page retries every ${RETRY_SECONDS} seconds.`;
  if (error.status === 401) return `The service needs an API key: ${error.message}.`;
  return `${doing}: ${error.message}.`;
}

function showError(text) {
  ui.error.textContent = text;
  ui.error.hidden = false;
}

function clearError() {
  ui.error.hidden = true;
  ui.error.textContent = "";
}

// --- features the service may or may not have -------------------------------------------------

async function optional(path) {
  try {
    return await api(path);
  } catch (error) {
    if (error.status === 404 || error.status === 405) return false;
    throw error;
  }
}

async function detectFeatures() {
  if (service.models === null) service.models = await optional("/models");
  if (service.genres === null) {
    const answer = await optional("/genres");
    service.genres = answer ? answer.genres : false;
  }
  renderModels();
  renderFilters();
}

function modelInfo() {
  if (!service.models) return null;
  const name = state.model || service.models.default;
  return service.models.models.find((m) => m.name === name) || null;
}

// --- movies by id and by title ----------------------------------------------------------------

function remember(list) {
  for (const movie of list) movies.set(movie.movie_id, movie);
}

async function loadTitles() {
  const missing = [...state.ratings.keys()].filter((id) => !movies.has(id));
  await Promise.all(missing.map(async (id) => {
    try {
      movies.set(id, await api(`/movies/${id}`));
    } catch (error) {
      if (error.status === 404 || error.status === 422) movies.set(id, false);
    }
  }));
  renderRated();
}

const search = { found: [], active: -1, seq: 0, timer: 0, abort: null };

function scheduleSearch() {
  clearTimeout(search.timer);
  search.timer = setTimeout(runSearch, 150);
}

async function runSearch() {
  const text = ui.search.value.trim();
  const seq = ++search.seq;
  if (search.abort) search.abort.abort();
  if (!text) {
    closeOptions();
    return;
  }
  search.abort = new AbortController();
  try {
    const answer = await api(`/movies?search=${encodeURIComponent(text)}&limit=${SEARCH_LIMIT}`,
      { signal: search.abort.signal });
    if (seq !== search.seq) return;
    remember(answer.items);
    // The option under the arrow keys stays chosen when it is still in the list.
    const chosen = search.found[search.active]?.movie_id;
    search.found = answer.items;
    search.active = Math.max(0, answer.items.findIndex((m) => m.movie_id === chosen));
    if (!answer.items.length) search.active = -1;
    renderOptions();
    const count = answer.items.length;
    ui.searchStatus.textContent = count
      ? `${count} ${count === 1 ? "movie" : "movies"} found for "${text}"`
      : `No movie title contains "${text}"`;
  } catch (error) {
    if (error.name === "AbortError") return;
    showError(explain(error, "Cannot search"));
  }
}

function closeOptions() {
  search.found = [];
  search.active = -1;
  renderOptions();
}

function moveActive(step) {
  const n = search.found.length;
  if (!n) return;
  search.active = search.active < 0 ? (step > 0 ? 0 : n - 1) : (search.active + step + n) % n;
  renderOptions();
}

function onSearchKey(event) {
  if (event.key === "ArrowDown" || event.key === "ArrowUp") {
    event.preventDefault();
    if (!search.found.length) runSearch();
    else moveActive(event.key === "ArrowDown" ? 1 : -1);
  } else if (event.key === "Enter") {
    event.preventDefault();
    const movie = search.found[Math.max(search.active, 0)];
    if (movie) pick(movie, event.shiftKey ? -1 : 1);
  } else if (event.key === "Escape") {
    if (search.found.length) closeOptions();
    else ui.search.value = "";
  }
}

// Adds a movie from the search list (or a recommendation) as liked (+1) or disliked (-1).
function pick(movie, direction) {
  rate(movie.movie_id, direction);
  ui.search.value = "";
  closeOptions();
  ui.searchStatus.textContent = `${direction > 0 ? "Liked" : "Disliked"} ${movie.title}`;
}

// --- ratings ----------------------------------------------------------------------------------

function rate(id, direction) {
  if (!state.ratings.has(id) && state.ratings.size >= MAX_RATINGS) {
    showError(`You can rate at most ${MAX_RATINGS} movies: remove one first.`);
    return;
  }
  state.ratings.delete(id); // re-rating moves the movie to the top of the list
  state.ratings.set(id, state.scale === "stars" ? STARS_FROM_UNIT[direction] : direction);
  changed();
}

function setRating(id, value) {
  state.ratings.set(id, value);
  changed();
}

function likedStars() {
  return (service.models && service.models.liked_stars) || LIKED_STARS;
}

function unrate(id) {
  state.ratings.delete(id);
  changed();
}

function setScale(scale) {
  if (scale === state.scale) return;
  for (const [id, v] of state.ratings) {
    state.ratings.set(id, scale === "stars" ? STARS_FROM_UNIT[v] : (v >= likedStars() ? 1 : -1));
  }
  state.scale = scale;
  changed();
}

function useTutorial() {
  state.scale = "unit";
  state.ratings = new Map([
    ...TUTORIAL.likes.map((id) => [id, 1]),
    ...TUTORIAL.dislikes.map((id) => [id, -1]),
  ]);
  state.limit = TUTORIAL.limit;
  state.genres = [];
  state.yearMin = state.yearMax = null;
  const hasTutorial = service.models && service.models.models.some((m) => m.name === TUTORIAL.model);
  state.model = hasTutorial ? TUTORIAL.model : null;
  renderModels();
  renderFilters();
  changed();
  loadTitles();
}

// Every change: the URL, the list of rated movies, and fresh recommendations.
function changed() {
  writeUrl();
  renderControls();
  renderRated();
  refresh();
}

// --- recommendations --------------------------------------------------------------------------

function requestBody() {
  const body = { ratings: Object.fromEntries([...state.ratings].map(([id, v]) => [String(id), v])), limit: state.limit };
  if (state.scale === "stars") body.scale = "stars";
  if (service.models) body.model = state.model || service.models.default;
  return Object.assign(body, activeFilters());
}

// The genre / year filters in force, as the API names them ({} when none, or not offered).
function activeFilters() {
  const filters = {};
  if (service.genres && filtersAllowed()) {
    if (state.genres.length) filters.genres = [...state.genres];
    if (state.yearMin !== null) filters.year_min = state.yearMin;
    if (state.yearMax !== null) filters.year_max = state.yearMax;
  }
  return filters;
}

const recs = { seq: 0, abort: null, retry: 0 };

async function refresh() {
  const seq = ++recs.seq;
  clearTimeout(recs.retry);
  if (recs.abort) recs.abort.abort();
  if (!state.ratings.size) {
    clearError();
    ui.results.replaceChildren();
    ui.summary.textContent = "Rate a movie to see recommendations.";
    showPopular(seq);
    return;
  }
  ui.popular.hidden = true;
  recs.abort = new AbortController();
  ui.results.setAttribute("aria-busy", "true");
  try {
    const answer = await api("/recommendations", { body: requestBody(), signal: recs.abort.signal });
    if (seq !== recs.seq) return;
    clearError();
    renderResults(answer);
  } catch (error) {
    if (error.name === "AbortError" || seq !== recs.seq) return;
    ui.results.replaceChildren();
    ui.summary.textContent = "";
    showError(explain(error, "Cannot recommend"));
    if (error.status === 0 || error.status === 503) {
      recs.retry = setTimeout(refresh, RETRY_SECONDS * 1000);
    }
  } finally {
    if (seq === recs.seq) ui.results.setAttribute("aria-busy", "false");
  }
}

// Nothing rated yet: the service answers no ratings with its most popular movies (with the
// filters), shown as a strip to rate from. A service without that answer leaves the strip out.
async function showPopular(seq) {
  recs.abort = new AbortController();
  try {
    const body = { ratings: {}, limit: POPULAR_LIMIT, ...activeFilters() };
    const answer = await api("/recommendations", { body, signal: recs.abort.signal });
    if (seq !== recs.seq) return;
    for (const movie of answer.items) if (!movies.get(movie.movie_id)) movies.set(movie.movie_id, movie);
    ui.popularList.replaceChildren(...answer.items.map((movie) => el("li", {
      class: "strip-movie", "data-movie-id": movie.movie_id, title: movie.why?.text,
    },
    el("span", { class: "title", text: movie.title }),
    el("span", { class: "meta", text: describe(movie) }),
    rateButtons(movie))));
    ui.popular.hidden = !answer.items.length;
  } catch (error) {
    if (error.name === "AbortError" || seq !== recs.seq) return;
    ui.popular.hidden = true;
    if (error.status === 0 || error.status === 503) showError(explain(error, "Cannot load popular movies"));
  }
}

// "Seen it?" Like and Dislike buttons for a movie shown by the service.
function rateButtons(movie) {
  return el("span", { class: "seen" },
    el("button", { type: "button", class: "like", "aria-label": `Like ${movie.title}`, title: "Seen it? Like it",
      onclick: () => rate(movie.movie_id, 1) }, "Like"),
    el("button", { type: "button", class: "dislike", "aria-label": `Dislike ${movie.title}`, title: "Seen it? Dislike it",
      onclick: () => rate(movie.movie_id, -1) }, "Dislike"));
}

// --- importing an export ---------------------------------------------------------------------

// The service matches the file to its catalog; the matched ratings (in stars) join the list,
// and every row that did not match is listed with the service's reason.
async function importFile(file) {
  ui.importReport.hidden = false;
  ui.importReport.replaceChildren(el("p", { text: `Importing ${file.name}…` }));
  let answer;
  try {
    const response = await fetch("/ratings/import", {
      method: "POST", headers: { "Content-Type": "text/csv" }, body: file,
    });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      throw new ApiError(response.status, data && typeof data.error === "string" ? data.error
        : `HTTP ${response.status}`);
    }
    answer = data;
  } catch (error) {
    const message = error.status === 413 ? "the file is too large to import" : error.message;
    ui.importReport.replaceChildren(el("p", { class: "import-error",
      text: `Cannot import ${file.name}: ${message}.` }));
    return;
  } finally {
    ui.importFile.value = "";
  }
  if (state.scale !== "stars") {
    for (const [id, v] of state.ratings) state.ratings.set(id, STARS_FROM_UNIT[v]);
    state.scale = "stars";
  }
  let skipped = 0;
  for (const m of answer.matched) {
    if (!state.ratings.has(m.movie_id) && state.ratings.size >= MAX_RATINGS) { skipped += 1; continue; }
    state.ratings.delete(m.movie_id);
    state.ratings.set(m.movie_id, m.stars);
    movies.set(m.movie_id, { movie_id: m.movie_id, title: m.title, year: m.year, genres: m.genres });
  }
  const kinds = { letterboxd: "Letterboxd", imdb: "IMDb", csv: "csv" };
  const used = answer.matched.length - skipped;
  const summary = `Imported ${used} of ${answer.rows} rows from ${file.name} (${kinds[answer.format] || answer.format})`
    + (answer.unmatched.length ? `; ${answer.unmatched.length} did not match:` : ".");
  ui.importReport.replaceChildren(el("p", { class: "import-summary", text: summary }),
    answer.unmatched.length ? el("ul", { class: "unmatched", "aria-label": "Rows that did not match" },
      ...answer.unmatched.map((row) => el("li", {},
        el("span", { class: "title", text: `Line ${row.line}${row.title ? `: ${row.title}` : ""}${row.year ? ` (${row.year})` : ""}` }),
        el("span", { class: "meta", text: row.reason })))) : null,
    skipped ? el("p", { class: "meta", text: `${skipped} more left out: at most ${MAX_RATINGS} ratings.` }) : null);
  changed();
}

// --- more like this ---------------------------------------------------------------------------

// The service finds similar movies with its item model; without it, the control is left out.
function similarOffered() {
  return Boolean(service.models && service.models.models.some((m) => m.name === "item"));
}

const similar = { open: new Set(), answers: new Map() };

function similarPath(id) {
  const q = new URLSearchParams({ limit: String(SIMILAR_LIMIT) });
  const filters = activeFilters();
  for (const genre of filters.genres || []) q.append("genres", genre);
  if (filters.year_min !== undefined) q.set("year_min", String(filters.year_min));
  if (filters.year_max !== undefined) q.set("year_max", String(filters.year_max));
  return `/movies/${id}/similar?${q}`;
}

function similarControl(movie) {
  if (!similarOffered()) return null;
  const open = similar.open.has(movie.movie_id);
  return el("button", {
    type: "button", class: "secondary more", "aria-expanded": String(open),
    "aria-controls": `similar-${movie.movie_id}`, "aria-label": `More like ${movie.title}`,
    onclick: (e) => toggleSimilar(movie, e.currentTarget),
  }, "More like this");
}

function toggleSimilar(movie, button) {
  const id = movie.movie_id;
  const item = button.closest("li.movie");
  if (similar.open.has(id)) {
    similar.open.delete(id);
    button.setAttribute("aria-expanded", "false");
    item.querySelector(".similar")?.remove();
    return;
  }
  similar.open.add(id);
  button.setAttribute("aria-expanded", "true");
  item.append(similarBlock(movie));
}

// The list of movies like `movie` (fetched once per filter setting), or why there is none.
function similarBlock(movie) {
  const block = el("div", { class: "similar", id: `similar-${movie.movie_id}`, "aria-busy": "true" },
    el("p", { class: "meta", text: "Finding similar movies…" }));
  const path = similarPath(movie.movie_id);
  const known = similar.answers.get(path);
  const answer = known || api(path).then((a) => { similar.answers.set(path, a); return a; });
  Promise.resolve(answer).then((found) => {
    block.replaceChildren(found.items.length
      ? el("ul", { class: "similar-list", "aria-label": `Movies like ${movie.title}` },
        ...found.items.map((m) => {
          if (!movies.get(m.movie_id)) movies.set(m.movie_id, m);
          return el("li", { class: "similar-movie", "data-movie-id": m.movie_id },
            el("span", { class: "similar-text" },
              el("span", { class: "title", text: m.title }),
              el("span", { class: "meta", text: describe(m) }),
              m.why && m.why.text ? el("span", { class: "similar-why", text: m.why.text }) : null),
            state.ratings.has(m.movie_id) ? el("span", { class: "mark", text: ratingWord(state.ratings.get(m.movie_id)) })
              : rateButtons(m));
        }))
      : el("p", { class: "meta", text: "No similar movie matches: loosen the filters." }));
  }).catch((error) => {
    block.replaceChildren(el("p", { class: "similar-error", role: "status",
      text: `No similar movies: ${error.message}.` }));
  }).finally(() => block.setAttribute("aria-busy", "false"));
  return block;
}

// --- rendering --------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function describe(movie) {
  const parts = [];
  if (movie.year) parts.push(String(movie.year));
  if (movie.genres && movie.genres.length) parts.push(movie.genres.join(", "));
  return parts.join(" · ");
}

function renderOptions() {
  const open = search.found.length > 0;
  ui.options.hidden = !open;
  ui.search.setAttribute("aria-expanded", String(open));
  ui.options.replaceChildren(...search.found.map((movie, i) => {
    const rated = state.ratings.get(movie.movie_id);
    const mark = rated === undefined ? null
      : el("span", { class: "mark", text: ratingWord(rated) });
    const option = el("li", {
      id: `option-${i}`, role: "option", class: "option", "aria-selected": String(i === search.active),
      "data-movie-id": movie.movie_id, onmousedown: (e) => e.preventDefault(),
      onclick: () => pick(movie, 1),
    },
    el("span", { class: "option-text" },
      el("span", { class: "title", text: movie.title }),
      el("span", { class: "meta", text: `${describe(movie)} · ${movie.rating_count} ratings` })),
    mark,
    el("span", { class: "option-buttons" },
      el("button", { type: "button", tabindex: "-1", class: "like", "aria-label": `Like ${movie.title}`,
        onclick: (e) => { e.stopPropagation(); pick(movie, 1); } }, "Like"),
      el("button", { type: "button", tabindex: "-1", class: "dislike", "aria-label": `Dislike ${movie.title}`,
        onclick: (e) => { e.stopPropagation(); pick(movie, -1); } }, "Dislike")));
    return option;
  }));
  if (search.active >= 0 && open) {
    ui.search.setAttribute("aria-activedescendant", `option-${search.active}`);
    ui.options.children[search.active].scrollIntoView({ block: "nearest" });
  } else {
    ui.search.removeAttribute("aria-activedescendant");
  }
}

function ratingWord(value) {
  if (state.scale === "stars") return `${value} ★`;
  return value > 0 ? "liked" : "disliked";
}

function renderRated() {
  ui.ratedEmpty.hidden = state.ratings.size > 0;
  ui.clear.hidden = state.ratings.size === 0;
  // Likes (or the most stars) first; the newest first among equals.
  const ordered = [...state.ratings].reverse().sort(([, a], [, b]) => b - a);
  ui.rated.replaceChildren(...ordered.map(([id, value]) => {
    const movie = movies.get(id);
    const name = movie ? movie.title : `Movie ${id}`;
    const meta = movie === false ? "not in this dataset"
      : movie ? describe(movie) : "loading…";
    return el("li", { class: `rated-movie${movie === false ? " unknown" : ""}`, "data-movie-id": id },
      el("span", { class: "rated-text" },
        el("span", { class: "title", text: name }),
        el("span", { class: "meta", text: meta })),
      ratingControl(id, name, value),
      el("button", { type: "button", class: "remove", "aria-label": `Remove ${name}`, title: "Remove",
        onclick: () => removeAndRefocus(id) }, "✕"));
  }));
}

function ratingControl(id, name, value) {
  if (state.scale === "stars") {
    const select = el("select", { "aria-label": `Stars for ${name}`, class: "stars",
      onchange: (e) => setRating(id, Number(e.target.value)) },
    ...STAR_CHOICES.map((n) => el("option", { value: n,
      text: `${"★".repeat(Math.floor(n))}${n % 1 ? "½" : ""} ${n}` })));
    select.value = String(value);
    return select;
  }
  const toggle = (direction, label) => el("button", {
    type: "button", class: direction > 0 ? "like" : "dislike", "aria-pressed": String(value === direction),
    "aria-label": `${label} ${name}`, onclick: () => setRating(id, direction),
  }, label);
  return el("span", { class: "toggle", role: "group", "aria-label": `Your rating of ${name}` },
    toggle(1, "Like"), toggle(-1, "Dislike"));
}

// Keyboard users keep their place: focus moves to the next movie's remove button, or search.
function removeAndRefocus(id) {
  const items = [...ui.rated.children];
  const index = items.findIndex((li) => Number(li.dataset.movieId) === id);
  unrate(id);
  const next = ui.rated.children[Math.min(index, ui.rated.children.length - 1)];
  (next ? next.querySelector(".remove") : ui.search).focus();
}

function renderResults(answer) {
  for (const movie of answer.items) if (!movies.get(movie.movie_id)) movies.set(movie.movie_id, movie);
  ui.results.replaceChildren(...answer.items.map((movie) => el("li", {
    class: "movie", "data-movie-id": movie.movie_id, "data-score": movie.score,
  },
  el("div", { class: "movie-head" },
    el("span", { class: "title", text: movie.title }),
    el("span", { class: "score", title: "score", text: movie.score.toFixed(4) })),
  el("div", { class: "movie-foot" },
    el("span", { class: "meta genres", text: movie.genres.join(", ") }),
    el("span", { class: "movie-buttons" }, similarControl(movie), rateButtons(movie))),
  movie.why && movie.why.text ? el("p", { class: "why", text: movie.why.text }) : null,
  similar.open.has(movie.movie_id) && similarOffered() ? similarBlock(movie) : null)));
  // Open "More like this" lists stay open while their movie is still recommended.
  const shownIds = new Set(answer.items.map((m) => m.movie_id));
  for (const id of similar.open) if (!shownIds.has(id)) similar.open.delete(id);

  const n = state.ratings.size;
  const parts = [`${answer.items.length} movies for your ${n} rated ${n === 1 ? "movie" : "movies"}`];
  if (answer.model) parts.push(`model ${answer.model}`);
  const filter = filterSummary();
  if (filter) parts.push(filter);
  ui.summary.textContent = answer.items.length ? parts.join(" · ")
    : "No movie matches: loosen the filters or rate other movies.";
}

function renderControls() {
  for (const radio of document.querySelectorAll("input[name=scale]")) {
    radio.checked = radio.value === state.scale;
  }
  ui.limit.value = String(state.limit);
}

function renderModels() {
  const models = service.models;
  ui.modelField.hidden = !models;
  ui.modelHelp.hidden = !models;
  if (!models) return;
  if (state.model && !models.models.some((m) => m.name === state.model)) state.model = null;
  ui.model.replaceChildren(...models.models.map((m) => el("option", {
    value: m.name, text: m.name === models.default ? `${m.name} (default)` : m.name,
  })));
  ui.model.value = state.model || models.default;
  ui.modelHelp.textContent = modelInfo()?.description || "";
}

function filtersAllowed() {
  const info = modelInfo();
  return !info || info.filters !== false;
}

function filterSummary() {
  const parts = [];
  if (state.genres.length) parts.push(state.genres.join(" or "));
  const [from, to] = [state.yearMin, state.yearMax];
  if (from !== null && to !== null) parts.push(`${from}–${to}`);
  else if (from !== null) parts.push(`from ${from}`);
  else if (to !== null) parts.push(`until ${to}`);
  return service.genres && filtersAllowed() ? parts.join(", ") : "";
}

function renderFilters() {
  ui.filters.hidden = !service.genres;
  if (!service.genres) return;
  state.genres = state.genres.filter((g) => service.genres.includes(g));
  if (ui.genres.children.length !== service.genres.length) {
    ui.genres.replaceChildren(...service.genres.map((genre) => el("label", { class: "chip" },
      el("input", { type: "checkbox", value: genre, onchange: onGenre }), genre)));
  }
  for (const box of ui.genres.querySelectorAll("input")) box.checked = state.genres.includes(box.value);
  ui.yearMin.value = state.yearMin ?? "";
  ui.yearMax.value = state.yearMax ?? "";
  const allowed = filtersAllowed();
  for (const input of ui.filters.querySelectorAll("input, #filters-clear")) input.disabled = !allowed;
  ui.filterSummary.textContent = filterSummary();
}

function onGenre() {
  state.genres = [...ui.genres.querySelectorAll("input:checked")].map((box) => box.value);
  ui.filterSummary.textContent = filterSummary();
  changed();
}

function onYear() {
  const parse = (input) => (/^\d{4}$/.test(input.value) ? Number(input.value) : null);
  state.yearMin = parse(ui.yearMin);
  state.yearMax = parse(ui.yearMax);
  ui.filterSummary.textContent = filterSummary();
  changed();
}

// --- start ------------------------------------------------------------------------------------

// /readyz answers 503 with {"status", "detail"}: the detail says what to do.
async function readiness() {
  let response;
  try {
    response = await fetch("/readyz");
  } catch {
    return { ready: false, problem: `Cannot reach the service: is it running? The page retries every ${RETRY_SECONDS} seconds.` };
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok) return { ready: true, body };
  const detail = body.detail || body.error || `HTTP ${response.status}`;
  return { ready: false, problem: explain(new ApiError(response.status, detail), "The service is not ready") };
}

async function start() {
  const { ready, body, problem } = await readiness();
  if (!ready) {
    ui.status.textContent = "Not ready.";
    showError(problem);
    setTimeout(start, RETRY_SECONDS * 1000);
    return;
  }
  clearError();
  ui.status.textContent = `${body.dataset || "MovieLens"}: ${body.movies.toLocaleString("en")} movies, `
    + `${body.users.toLocaleString("en")} users, ${body.store} store.`;
  try {
    await detectFeatures();
  } catch (error) {
    showError(explain(error, "Cannot load the models and genres"));
  }
  loadTitles();
  refresh();
}

function init() {
  for (const id of ["error", "search", "rated", "clear", "limit", "model", "results", "summary",
    "status", "filters", "genres"]) ui[id] = $(id);
  Object.assign(ui, {
    options: $("search-results"), searchStatus: $("search-status"), ratedEmpty: $("rated-empty"),
    popular: $("popular"), popularList: $("popular-list"), importFile: $("import-file"),
    importReport: $("import-report"),
    modelField: $("model-field"), modelHelp: $("model-help"), yearMin: $("year-min"),
    yearMax: $("year-max"), filterSummary: $("filter-summary"),
  });
  readUrl();
  renderControls();
  renderRated();
  ui.summary.textContent = state.ratings.size ? "Loading recommendations…" : "Rate a movie to see recommendations.";

  ui.search.addEventListener("input", scheduleSearch);
  ui.search.addEventListener("keydown", onSearchKey);
  ui.search.addEventListener("blur", () => setTimeout(closeOptions, 150));
  ui.search.addEventListener("focus", () => ui.search.value.trim() && runSearch());
  for (const radio of document.querySelectorAll("input[name=scale]")) {
    radio.addEventListener("change", () => setScale(radio.value));
  }
  ui.limit.addEventListener("change", () => { state.limit = Number(ui.limit.value); changed(); });
  ui.model.addEventListener("change", () => {
    state.model = ui.model.value === service.models.default ? null : ui.model.value;
    renderModels();
    renderFilters();
    changed();
  });
  ui.yearMin.addEventListener("change", onYear);
  ui.yearMax.addEventListener("change", onYear);
  $("filters-clear").addEventListener("click", () => {
    state.genres = [];
    state.yearMin = state.yearMax = null;
    renderFilters();
    changed();
  });
  $("tutorial").addEventListener("click", useTutorial);
  ui.importFile.addEventListener("change", () => ui.importFile.files[0] && importFile(ui.importFile.files[0]));
  ui.clear.addEventListener("click", () => { state.ratings.clear(); changed(); ui.search.focus(); });
  start();
}

init();

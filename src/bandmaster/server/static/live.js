// Live updates of a dashboard page without reloading it, so that a comment being typed, a
// focused field or a scrolled position survive. The page's own URL is fetched again and its
// regions are carried over by id:
//   data-live="replace"  the region's content is replaced (a table body, a card's facts);
//   data-live="merge"    children are matched by id: new ones are inserted, existing ones
//                        stay in place (their forms untouched) with their own replace regions
//                        updated, gone ones are removed, unless text was typed into them:
//                        those stay, marked as no longer pending, their buttons disabled.
// When: every data-live-every seconds; or, on a page with data-events (a running run), each
// time the run's server-sent events say something changed, until its "end" event. Token
// events append the model's streamed text to #live-text as it arrives.
(function () {
  "use strict";
  const root = document.querySelector("[data-live-every], [data-events]");
  if (!root) return;
  const every = Math.max(1, Number(root.dataset.liveEvery || 5)) * 1000;
  const note = document.getElementById("live-status");
  let pending = null;
  let source = null;

  function say(text) {
    if (note) note.textContent = text;
  }

  function typedInto(element) {
    return [...element.querySelectorAll("textarea, input[type=text]")].some(
      (field) => field.value.trim() !== "" || field === document.activeElement
    );
  }

  function retire(element) {
    if (element.dataset.retired) return;
    element.dataset.retired = "1";
    const notice = document.createElement("p");
    notice.setAttribute("role", "status");
    notice.className = "error";
    notice.textContent = "This approval is no longer pending (decided or timed out elsewhere); your text is kept here.";
    element.prepend(notice);
    element.querySelectorAll("button, input[type=checkbox]").forEach((control) => (control.disabled = true));
  }

  function replaceRegions(scope, fresh) {
    for (const next of fresh.querySelectorAll('[data-live="replace"]')) {
      const region = scope.querySelector("#" + CSS.escape(next.id));
      if (region) region.replaceChildren(...next.childNodes);
    }
  }

  function merge(region, next) {
    const wanted = new Set([...next.children].map((child) => child.id));
    for (const child of [...region.children]) {
      if (wanted.has(child.id)) continue;
      if (typedInto(child)) retire(child);
      else child.remove();
    }
    let previous = null;
    for (const fresh of [...next.children]) {
      let current = document.getElementById(fresh.id);
      if (current && current.parentElement === region) {
        replaceRegions(current, fresh); // existing nodes never move: a focused field keeps focus
      } else {
        current = document.importNode(fresh, true);
        region.insertBefore(current, previous ? previous.nextSibling : region.firstChild);
      }
      previous = current;
    }
  }

  // Fetch the page again and carry its regions over; false when updates must stop.
  async function refresh() {
    let response;
    try {
      response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      say("Live updates paused: the server does not answer; retrying.");
      return true;
    }
    if (response.redirected || !response.ok) {
      say("Live updates stopped (the session ended or the server refused); reload the page.");
      return false;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live]")) {
      const next = fresh.getElementById(region.id);
      const nested = region.parentElement && region.parentElement.closest("[data-live]");
      if (!next || nested) continue; // a region inside another is carried over by its parent
      if (region.dataset.live === "merge") merge(region, next);
      else region.replaceChildren(...next.childNodes);
    }
    document.dispatchEvent(new CustomEvent("bm:updated"));
    say("");
    return true;
  }

  function soon(delay) {
    if (pending !== null) return;
    pending = setTimeout(async () => {
      pending = null;
      await refresh();
    }, delay);
  }

  function follow(url) {
    source = new EventSource(url);
    const changed = () => soon(200);
    source.addEventListener("status", changed);
    source.addEventListener("step", changed);
    source.addEventListener("token", (event) => {
      const box = document.getElementById("live-text");
      if (!box) return;
      const chunk = JSON.parse(event.data);
      if (chunk.restart) box.textContent = "";
      box.hidden = false;
      box.textContent += chunk.text || "";
    });
    source.addEventListener("end", () => {
      source.close();
      soon(0);
    });
    source.onerror = () => {
      // The stream ended or broke: fall back to reading the page every few seconds.
      source.close();
      say("Live events interrupted; updating every few seconds instead.");
      poll();
    };
  }

  async function poll() {
    if (await refresh()) setTimeout(poll, every);
  }

  if (root.dataset.events && window.EventSource) follow(root.dataset.events);
  else setTimeout(poll, every);
})();

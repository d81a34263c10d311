// Live updates of a dashboard page without reloading it, so that a comment being typed, a
// focused field or a scrolled position survive. Every few seconds the page's own URL is
// fetched again, and its regions are carried over by id:
//   data-live="replace"  the region's content is replaced (a table body, a card's facts);
//   data-live="merge"    children are matched by id: new ones are inserted, existing ones
//                        stay in place (their forms untouched) with their own replace regions
//                        updated, gone ones are removed, unless text was typed into them:
//                        those stay, marked as no longer pending, their buttons disabled.
(function () {
  "use strict";
  const root = document.querySelector("[data-live-every]");
  if (!root) return;
  const every = Math.max(1, Number(root.dataset.liveEvery)) * 1000;
  const note = document.getElementById("live-status");

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
    element.querySelectorAll("button").forEach((button) => (button.disabled = true));
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

  async function update() {
    let response;
    try {
      response = await fetch(location.href, { credentials: "same-origin", cache: "no-store" });
    } catch (error) {
      say("Live updates paused: the server does not answer; retrying.");
      return setTimeout(update, every);
    }
    if (response.redirected || !response.ok) {
      say("Live updates stopped (the session ended or the server refused); reload the page.");
      return;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    for (const region of document.querySelectorAll("[data-live]")) {
      const next = fresh.getElementById(region.id);
      const nested = region.parentElement && region.parentElement.closest("[data-live]");
      if (!next || nested) continue; // a region inside another is carried over by its parent
      if (region.dataset.live === "merge") merge(region, next);
      else region.replaceChildren(...next.childNodes);
    }
    say("");
    setTimeout(update, every);
  }

  setTimeout(update, every);
})();

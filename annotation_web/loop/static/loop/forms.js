// The loop's forms (promote, roll back, the policy): once one is sent, its buttons are disabled so that a second
// press cannot record the same promotion twice. Disabled a moment after the submit event, so that the button
// pressed still sends its name and value; enabled again when the browser shows the page from its back-forward
// cache. Nothing else: the forms work without this script.
(() => {
  "use strict";
  const disabledHere = new Set();
  for (const form of document.querySelectorAll("form[data-busy-form]")) {
    form.addEventListener("submit", () => {
      window.setTimeout(() => {
        for (const button of form.querySelectorAll("button[type=submit]")) {
          if (!button.disabled) {
            button.disabled = true;
            disabledHere.add(button);
          }
        }
        form.setAttribute("aria-busy", "true");
      }, 0);
    });
  }
  window.addEventListener("pageshow", (event) => {
    if (!event.persisted) return;
    for (const button of disabledHere) button.disabled = false;
    disabledHere.clear();
    for (const form of document.querySelectorAll("form[aria-busy]")) form.removeAttribute("aria-busy");
  });
})();

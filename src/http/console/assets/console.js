// keygate console: progressive enhancement only. Every page works without this file; it adds
// a copy button beside a secret shown once.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) {
    const field = document.getElementById(button.dataset.copy);
    if (!field) continue;
    button.hidden = false;
    button.addEventListener("click", async () => {
      field.select();
      try {
        await navigator.clipboard.writeText(field.value);
      } catch {
        // No clipboard permission (plain HTTP off localhost): the text stays selected for Ctrl+C.
        document.execCommand && document.execCommand("copy");
      }
      button.textContent = "Copied";
      button.setAttribute("aria-live", "polite");
    });
  }
});

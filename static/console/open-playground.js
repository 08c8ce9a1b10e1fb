// "Open in playground" buttons: the playground remembers its sandbox in localStorage (playground.js).
export function openInPlayground(sandboxId, runtime) {
  localStorage.setItem("mem0.playground", JSON.stringify({ sandbox: sandboxId, runtime }));
  window.location.assign("/playground");
}

for (const button of document.querySelectorAll("[data-open-playground]")) {
  button.addEventListener("click", () => openInPlayground(button.dataset.openPlayground, button.dataset.runtime));
}

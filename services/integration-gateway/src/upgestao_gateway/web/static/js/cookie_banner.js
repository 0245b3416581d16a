// cookie_banner.js: shown on every page until the visitor has chosen (see pages/cookies.js, which owns
// the consent logic and the visitor id). show(force) re-renders it (after a language change).
export async function show(force) {
  const consent = await import("./consent.js");
  consent.renderBanner(document.getElementById("cookie-banner-slot"), force);
}

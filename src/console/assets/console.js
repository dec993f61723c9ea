// The console's one script: the alerts board follows the alert feed (Server-Sent Events)
// and, when an alert changes, fetches the board's cards again from the server (rendered
// and escaped there) and swaps them in. Without JavaScript the board still works; it just
// needs a reload.
"use strict";

function followBoard(board) {
  const feed = board.dataset.feed;
  const fragment = board.dataset.fragment;
  if (!feed || !fragment || !window.EventSource) {
    return;
  }
  let pending = false;
  const refresh = async () => {
    if (pending) {
      return;
    }
    pending = true;
    try {
      const res = await fetch(fragment, { credentials: "same-origin", cache: "no-store" });
      if (res.ok) {
        board.innerHTML = await res.text();
        board.dataset.refreshed = String(Number(board.dataset.refreshed || "0") + 1);
      }
    } finally {
      pending = false;
    }
  };
  const source = new EventSource(feed, { withCredentials: true });
  source.addEventListener("alert", refresh);
  source.addEventListener("open", () => {
    board.dataset.live = "true";
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const board = document.getElementById("board");
  if (board) {
    followBoard(board);
  }
});

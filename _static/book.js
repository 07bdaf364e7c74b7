// Every figure of a page opens full size when clicked (a page shows it scaled to the text's width).
document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll(".cell_output img").forEach((img) => {
    if (img.closest("a")) return;
    const link = document.createElement("a");
    link.href = img.src;
    link.title = "Open the figure full size";
    img.replaceWith(link);
    link.appendChild(img);
  });
});

// A table cell that holds one number (signed, with decimals, a % or an exponent) is set right-aligned,
// so digits line up; words, intervals and "mean ± sd" stay left-aligned as text is read.
document.addEventListener("DOMContentLoaded", () => {
  const number = /^[−+-]?\d[\d,]*(\.\d+)?(e[−+-]?\d+)?\s*%?$/i;
  document.querySelectorAll("table.book-table td").forEach((td) => {
    if (number.test(td.textContent.trim())) td.classList.add("book-number");
  });
});

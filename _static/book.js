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

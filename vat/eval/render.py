"""The report's blocks (:mod:`vat.eval.report`) written as Markdown and as HTML."""

from __future__ import annotations

import html


def to_markdown(bs: list[tuple]) -> str:
    lines: list[str] = []
    for b in bs:
        if b[0] == "h":
            lines += ["#" * b[1] + " " + b[2], ""]
        elif b[0] == "p":
            lines += [b[1], ""]
        elif b[0] == "table":
            header, rows = b[1], b[2]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
            lines.append("")
        elif b[0] == "img":
            lines += [f"![{b[2]}]({b[1]})", "", f"*{b[2]}*", ""]
        elif b[0] == "plot":
            lines += [f"![{b[7]}]({b[1]})", "", f"*{b[7]}*", ""]
    return "\n".join(lines)


def to_html(bs: list[tuple]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>VaT run report</title>",
        "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}"
        "table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child{text-align:left}"
        "img{max-width:100%}</style></head><body>",
    ]
    for b in bs:
        if b[0] == "h":
            parts.append(f"<h{b[1]}>{e(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            parts.append(f"<p>{e(b[1])}</p>")
        elif b[0] == "table":
            parts.append("<table><tr>" + "".join(f"<th>{e(str(h))}</th>" for h in b[1]) + "</tr>")
            for r in b[2]:
                parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>")
            parts.append("</table>")
        elif b[0] in ("img", "plot"):
            src, caption = (b[1], b[2]) if b[0] == "img" else (b[1], b[7])
            figure = f"<img src='{e(src)}' alt='{e(caption)}'><figcaption>{e(caption)}</figcaption>"
            parts.append(f"<figure>{figure}</figure>")
    return "\n".join(parts + ["</body></html>\n"])

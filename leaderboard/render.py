"""Renderers of a `Grid` (leaderboard/grid.py): Markdown, LaTeX, HTML and plain text.

They draw what the grid decided (bold, delta signs, status cells) and escape every string that can
come from run data for their output format.
"""
from __future__ import annotations

import html
import re
from typing import Any

from leaderboard.grid import Column, Grid


def esc_html(text: Any) -> str:
    return html.escape(str(text), quote=True)


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
          "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
          ">": r"\textgreater{}", "|": r"\textbar{}", "±": r"$\pm$", "↑": r"$\uparrow$", "↓": r"$\downarrow$",
          "→": r"$\rightarrow$", "Δ": r"$\Delta$", "✓": r"\checkmark{}", "✗": r"$\times$", "†": r"\dag{}", "‡": r"\ddag{}",
          "…": r"\ldots{}", "\n": " "}
_LATEX_RE = re.compile("|".join(re.escape(k) for k in _LATEX))


def esc_latex(text: Any) -> str:
    return _LATEX_RE.sub(lambda m: _LATEX[m.group(0)], str(text))


_MD_RE = re.compile(r"([\\`*_\[\]|#])")


def esc_md(text: Any) -> str:
    s = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")
    return _MD_RE.sub(r"\\\1", s)


def header_label(col: Column) -> str:
    if col.sub:
        return f"{col.group} ({col.sub})"
    return " ".join(x for x in (col.label, col.arrow, col.mark) if x)


def render_markdown(grid: Grid) -> str:
    lines = [f"**{esc_md(grid.title)}**", ""]
    if not grid.columns:
        return "\n".join(lines + [esc_md(n) for n in grid.notes]) + "\n"
    lines.append("| encoder | " + " | ".join(esc_md(header_label(c)) for c in grid.columns) + " |")
    lines.append("|---|" + "---:|" * len(grid.columns))
    for row in grid.rows:
        label = esc_md(row.label) if row.kind == "encoder" else f"*{esc_md(row.label)}*"
        cells = []
        for c in row.cells:
            text = esc_md(c.text)
            if c.kind in ("not-run", "missing-data"):
                text = f"*{text}*"
            cells.append(f"**{text}**" if c.bold else text)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [esc_md(n) for n in grid.notes]
    return "\n".join(lines) + "\n"


def render_latex(grid: Grid) -> str:
    """A booktabs tabular (needs \\usepackage{booktabs,xcolor,amssymb})."""
    if not grid.columns:
        return "% " + esc_latex(grid.title) + ": " + esc_latex(" ".join(grid.notes)) + "\n"
    out = [f"% {esc_latex(grid.title)}", "% needs \\usepackage{booktabs,xcolor,amssymb}",
           "\\begin{tabular}{l" + "r" * len(grid.columns) + "}", "\\toprule"]
    if any(c.sub for c in grid.columns):
        head, j = ["Encoder"], 0
        rules = []
        while j < len(grid.columns):
            k = j
            while k + 1 < len(grid.columns) and grid.columns[k + 1].group == grid.columns[j].group:
                k += 1
            head.append(f"\\multicolumn{{{k - j + 1}}}{{c}}{{{esc_latex(grid.columns[j].group)}}}")
            rules.append(f"\\cmidrule(lr){{{j + 2}-{k + 2}}}")
            j = k + 1
        out.append(" & ".join(head) + " \\\\")
        out.append(" ".join(rules))
        out.append(" & ".join([""] + [esc_latex(c.sub) for c in grid.columns]) + " \\\\")
    else:
        out.append(" & ".join(["Encoder"] + [esc_latex(header_label(c)) for c in grid.columns]) + " \\\\")
    out.append("\\midrule")
    for row in grid.rows:
        cells = [esc_latex(row.label) if row.kind == "encoder" else f"\\textit{{{esc_latex(row.label)}}}"]
        for c in row.cells:
            text = esc_latex(c.text)
            if c.bold:
                text = f"\\textbf{{{text}}}"
            if c.kind == "delta" and c.good is not None:
                text = f"\\textcolor[rgb]{{{'0,0.5,0' if c.good else '0.75,0,0'}}}{{{text}}}"
            if c.kind in ("not-run", "missing-data"):
                text = f"\\textit{{{text}}}"
            cells.append(text)
        out.append(" & ".join(cells) + " \\\\")
    out += ["\\bottomrule", "\\end{tabular}"]
    out += [f"% {esc_latex(n)}" for n in grid.notes]
    return "\n".join(out) + "\n"


TABLE_CSS = """
table.bench{border-collapse:collapse;font:13px/1.35 system-ui,sans-serif}
table.bench th,table.bench td{border-bottom:1px solid #ddd;padding:3px 8px;text-align:right;white-space:nowrap}
table.bench thead th{text-align:center}
table.bench th:first-child,table.bench td:first-child{text-align:left}
table.bench tr.delta td{color:#555;font-style:italic;border-bottom:1px solid #bbb}
table.bench tr.delta td.good{color:#17803d}table.bench tr.delta td.bad{color:#b3261e}
body{font:13px/1.4 system-ui,sans-serif}p.note{margin:.3em 0;color:#555}
table.bench .not-run,table.bench .missing-data{color:#999;font-style:italic}
table.bench .sub-paper{background:#f6f6f6}
table.bench .role-reference,table.bench .role-diagnostic{color:#777}
"""


def _html_cell(c: Column, cell) -> str:
    cls = [cell.kind] + ([f"sub-{c.sub}"] if c.sub else []) + ([f"role-{c.role}"] if c.role != "score" else []) \
        + (["good"] if cell.good is True else []) + (["bad"] if cell.good is False else [])
    text = esc_html(cell.text)
    if cell.bold:
        text = f"<strong>{text}</strong>"
    value = "" if cell.value is None else repr(float(cell.value))
    return (f'<td class="{" ".join(cls)}" data-value="{esc_html(value)}"'
            + (f' title="{esc_html(cell.title)}"' if cell.title else "") + f">{text}</td>")


def render_html_table(grid: Grid) -> str:
    out = [f'<table class="bench"><caption>{esc_html(grid.title)}</caption><thead>']
    if any(c.sub for c in grid.columns):
        out.append('<tr><th rowspan="2">Encoder</th>')
        j = 0
        while j < len(grid.columns):
            k = j
            while k + 1 < len(grid.columns) and grid.columns[k + 1].group == grid.columns[j].group:
                k += 1
            out.append(f'<th colspan="{k - j + 1}" title="{esc_html(grid.columns[j].title)}">'
                       f"{esc_html(grid.columns[j].group)}</th>")
            j = k + 1
        out.append("</tr><tr>" + "".join(f"<th>{esc_html(c.sub)}</th>" for c in grid.columns) + "</tr>")
    else:
        out.append("<tr><th>Encoder</th>" + "".join(
            f'<th title="{esc_html(c.title)}">{esc_html(header_label(c))}</th>' for c in grid.columns) + "</tr>")
    out.append("</thead><tbody>")
    for row in grid.rows:
        out.append(f'<tr class="{row.kind}"' + (f' title="{esc_html(row.title)}"' if row.title else "")
                   + f"><td>{esc_html(row.label)}</td>"
                   + "".join(_html_cell(c, cell) for c, cell in zip(grid.columns, row.cells)) + "</tr>")
    out.append("</tbody></table>")
    out += [f'<p class="note">{esc_html(n)}</p>' for n in grid.notes]
    return "\n".join(out)


def render_html(grid: Grid, standalone: bool = True) -> str:
    body = render_html_table(grid)
    if not standalone:
        return body
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc_html(grid.title)}</title><style>{TABLE_CSS}</style></head><body>\n{body}\n</body></html>\n")


def render_text(grid: Grid) -> str:
    """Aligned plain text for a terminal: `*` marks the best of a column, Δ rows are indented."""
    lines = [grid.title] if grid.title else []
    if not grid.columns:
        return "\n".join(lines + grid.notes) + "\n"
    head = ["encoder"] + [header_label(c) for c in grid.columns]
    body = [[r.label if r.kind == "encoder" else f"  {r.label}"]
            + [c.text + ("*" if c.bold else "") for c in r.cells] for r in grid.rows]
    widths = [max(len(row[j]) for row in [head] + body) for j in range(len(head))]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]).rstrip()

    lines += [line(head)] + [line(b) for b in body]
    lines += [""] + grid.notes if grid.notes else []
    return "\n".join(lines) + "\n"


RENDERERS = {"markdown": render_markdown, "latex": render_latex, "html": render_html, "text": render_text}


def render(grid: Grid, fmt_name: str = "markdown") -> str:
    try:
        return RENDERERS[fmt_name](grid)
    except KeyError:
        raise ValueError(f"unknown format {fmt_name!r}; one of {', '.join(RENDERERS)}") from None


__all__ = ["RENDERERS", "TABLE_CSS", "esc_html", "esc_latex", "esc_md", "header_label", "render", "render_html",
           "render_html_table", "render_latex", "render_markdown", "render_text"]

"""Rendering a `PolicyReport`: fixed-width text for the CLI, a standalone SVG for the web page.

The SVG is drawn on the server: no script, no external font, image or stylesheet, so that it works under
the reviewer pages' strict Content-Security-Policy; every piece of text in it (policy and category names
come from configuration and data) is XML-escaped.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

from moderation.miss_rate import MissRate
from moderation.report import UNREVIEWED, CategoryReport, PolicyReport, ReviewVerdict

__all__ = ["format_miss_rate", "format_table", "render_svg"]

WIDTH = 640
PANEL_HEIGHT = 190
HEADER = 44
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 40, 30
COLOURS = {"approved": "#3b8a3e", "rejected": "#c0392b", "hold": "#555555", "block": "#111111"}
SUGGESTED = "#1f5fbf"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def format_table(report: PolicyReport) -> str:
    """One line per (policy, category), then one per (live policy, shadow policy)."""
    bad = "rejected or edited" if report.edited_counts_as_rejected else "rejected"
    lines = [
        f"{report.outputs} outputs, {report.reviewed} reviewed; suggested hold = highest threshold at which "
        f"at most {_pct(report.target_rate)} of the reviewed outputs it would release were {bad}",
        "held: reviewed outputs this rule held; approved/edited/rejected: shares of those; scored: reviewed "
        "outputs with a score in the category; released/bad: scored outputs below the suggestion / bad ones",
        "",
    ]
    columns = [  # (heading, width); text columns left-aligned, numbers right-aligned
        ("policy", -14), ("category", -18), ("held", 5), ("approved", 9), ("edited", 7), ("rejected", 9),
        ("scored", 6), ("mean ok", 7), ("mean rej", 8), ("hold", 5), ("block", 5), ("suggested", 9),
        ("released/bad", 13),
    ]  # fmt: skip

    def line(cells: list[str]) -> str:
        return " ".join(
            f"{c[: abs(w)]:<{-w}}" if w < 0 else f"{c:>{w}}" for c, (_, w) in zip(cells, columns, strict=True)
        ).rstrip()

    header = line([h for h, _ in columns])
    lines += [header, "-" * len(header)]
    for row in report.categories:
        lines.append(
            line(
                [
                    row.policy,
                    row.category,
                    str(row.held),
                    _pct(row.share(row.held_approved)),
                    _pct(row.share(row.held_edited)),
                    _pct(row.share(row.held_rejected)),
                    str(row.reviewed),
                    _num(row.approved.mean),
                    _num(row.rejected.mean),
                    _num(row.current_hold),
                    _num(row.current_block),
                    _num(row.suggested_hold),
                    f"{row.released_at_suggestion}/{row.rejected_at_suggestion}",
                ]
            )
        )
    if not report.categories:
        lines.append("(no reviewed outputs)")
    qa_rows = [r for r in report.categories if r.qa_labelled]
    if qa_rows:
        lines += ["", "suggestions above include QA-labelled released outputs (weighted 1/sample rate): "
                  "policy/category harmful-in-category of labelled"]  # fmt: skip
        lines += [f"  {r.policy}/{r.category}: {r.qa_harmful} of {r.qa_labelled}" for r in qa_rows]
    if report.miss_rates:
        confidence = report.miss_rates[0].confidence
        lines += [
            "",
            f"miss rate: share of released outputs that QA reviewers labelled harmful "
            f"(Wilson {100 * confidence:g}% interval)",
        ]
        lines += [f"  {format_miss_rate(m)}" for m in report.miss_rates]
    if report.shadows:
        lines += ["", "shadow policies: would release / hold / block (of which rejected by reviewers)"]
        for s in report.shadows:
            parts = []
            for label, counts in (
                ("release", s.would_release),
                ("hold", s.would_hold),
                ("block", s.would_block),
            ):
                parts.append(f"{label} {sum(counts.values())} ({counts[ReviewVerdict.REJECTED.value]})")
            unreviewed = sum(c[UNREVIEWED] for c in (s.would_release, s.would_hold, s.would_block))
            lines.append(
                f"{s.policy[:14]:<14} in shadow {s.shadow[:14]:<14} {s.outputs:>6} outputs: "
                + ", ".join(parts)
                + f"; {unreviewed} unreviewed"
            )
    lines += _agreement_lines(report)
    return "\n".join(lines) + "\n"


def _agreement_lines(report: PolicyReport) -> list[str]:
    """Agreement between reviewers on the items several of them judged (moderation/agreement.py)."""
    if not report.agreement:
        return []
    lines = [
        "",
        "agreement between reviewers (items with 2+ verdicts; approve/edit/reject; '-': undefined, e.g. "
        "every verdict the same)",
        f"{'policy':<14} {'category':<18} {'items':>5} {'verdicts':>8} {'raw':>6} {'kappa':>6} {'alpha':>6}",
    ]
    for row in report.agreement:
        lines.append(
            f"{row.policy[:14]:<14} {row.category[:18]:<18} {row.items:>5} {row.verdicts:>8} "
            f"{_pct(row.raw_agreement):>6} {_num(row.cohen_kappa):>6} {_num(row.krippendorff_alpha):>6}"
        )
    return lines


def format_miss_rate(m: MissRate) -> str:
    """One miss-rate line: the estimate with its interval and the sample it rests on; n = 0 is said."""
    where = f"{m.policy[:14]:<14} {m.category[:18]:<18}"
    if m.sampled == 0 or m.estimate is None or m.low is None or m.high is None:
        return f"{where} no labelled QA samples (n = 0): no estimate"
    rates = ", ".join(f"{r:g}" for r in m.sample_rates)
    return (
        f"{where} {_pct(m.estimate):>6} [{_pct(m.low)}, {_pct(m.high)}]  "
        f"{m.harmful} harmful of n = {m.sampled} labelled (sample rate {rates})"
    )


def _text(
    x: float,
    y: float,
    body: str,
    *,
    size: int = 11,
    anchor: str = "start",
    fill: str = "#222",
    halo: bool = False,
) -> str:
    """A text element; `halo` draws a white outline under the letters so that they stay legible on bars."""
    outline = ' stroke="#ffffff" stroke-width="3" paint-order="stroke"' if halo else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-family="sans-serif" font-size="{size}" '
        f'text-anchor="{anchor}" fill="{fill}"{outline}>{escape(body)}</text>'
    )


def _panel(row: CategoryReport, edges: tuple[float, ...], top: float) -> list[str]:
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = PANEL_HEIGHT - _TOP - _BOTTOM
    x0, y0 = _LEFT, top + _TOP + plot_h  # bottom-left corner of the plot area

    def x(score: float) -> float:
        return x0 + plot_w * min(max(score, 0.0), 1.0)

    peak = max((*row.approved.bins, *row.rejected.bins, 1))
    title = (
        f"{row.policy} / {row.category}: {row.reviewed} reviewed (approved {row.approved.count}, "
        f"edited {row.edited.count}, rejected {row.rejected.count}); held by this rule {row.held}"
    )
    out = [
        f'<g class="panel"><title>{escape(title)}</title>',
        _text(x0, top + 16, title, size=12),
        f'<line x1="{x0}" y1="{y0:.1f}" x2="{x0 + plot_w}" y2="{y0:.1f}" stroke="#888"/>',
        f'<line x1="{x0}" y1="{y0 - plot_h:.1f}" x2="{x0}" y2="{y0:.1f}" stroke="#888"/>',
        _text(x0 - 6, y0 - plot_h + 4, str(peak), size=10, anchor="end"),
        _text(x0 - 6, y0 + 4, "0", size=10, anchor="end"),
    ]
    for edge in (edges[0], edges[len(edges) // 2], edges[-1]):
        out.append(_text(x(edge), y0 + 14, f"{edge:g}", size=10, anchor="middle"))
    out.append(_text(x0 + plot_w / 2, y0 + 26, f"{row.category} score", size=10, anchor="middle"))
    for i in range(len(edges) - 1):
        left, width = x(edges[i]), x(edges[i + 1]) - x(edges[i])
        for j, (name, bins) in enumerate((("approved", row.approved.bins), ("rejected", row.rejected.bins))):
            if bins[i]:
                h = plot_h * bins[i] / peak
                out.append(
                    f'<rect x="{left + 1 + j * (width - 2) / 2:.1f}" y="{y0 - h:.1f}" '
                    f'width="{(width - 2) / 2:.1f}" height="{h:.1f}" fill="{COLOURS[name]}" '
                    f'fill-opacity="0.8"><title>{escape(f"{name}: {bins[i]}")}</title></rect>'
                )
    marks = (
        ("hold", row.current_hold, COLOURS["hold"], ""),
        ("block", row.current_block, COLOURS["block"], ""),
        ("suggested hold", row.suggested_hold, SUGGESTED, ' stroke-dasharray="5,3"'),
    )
    for k, (label, value, colour, dash) in enumerate(marks):
        if value is None:
            continue
        out.append(
            f'<line x1="{x(value):.1f}" y1="{y0 - plot_h:.1f}" x2="{x(value):.1f}" y2="{y0:.1f}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
        )
        anchor = "end" if value > 0.8 else "start"
        nudge = -4 if anchor == "end" else 4
        out.append(_text(x(value) + nudge, y0 - plot_h + 10 + 12 * k, f"{label} {value:.2f}", size=10,
                         anchor=anchor, fill=colour, halo=True))  # fmt: skip
    out.append("</g>")
    return out


def render_svg(report: PolicyReport) -> str:
    """Approved vs rejected score histograms per (policy, category) with data, current thresholds (solid)
    and the suggested hold threshold (dashed). A standalone, valid XML document."""
    rows = [r for r in report.categories if r.reviewed]
    height = HEADER + PANEL_HEIGHT * max(len(rows), 1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img">',
        "<title>Reviewer verdicts by score</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    legend_x = _LEFT
    for name in ("approved", "rejected"):
        out.append(f'<rect x="{legend_x}" y="12" width="12" height="12" fill="{COLOURS[name]}"/>')
        out.append(_text(legend_x + 16, 22, name))
        legend_x += 90
    out.append(
        _text(
            legend_x, 22, f"target: at most {_pct(report.target_rate)} of released reviewed outputs rejected"
        )
    )
    if not rows:
        out.append(
            _text(WIDTH / 2, HEADER + PANEL_HEIGHT / 2, "no reviewed outputs with scores", anchor="middle")
        )
    for n, row in enumerate(rows):
        out += _panel(row, report.edges, HEADER + n * PANEL_HEIGHT)
    out.append("</svg>")
    return "\n".join(out) + "\n"

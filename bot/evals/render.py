"""The report in words: a table for the terminal, a Markdown file for `--report`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bot.evals.cases import Case, Expected
from bot.evals.report import ERROR, Summary, dollars, percent
from bot.evals.runner import CaseResult

COLUMNS = [*(e.value for e in Expected), ERROR]


def _turn(result: CaseResult) -> str:
    return "-" if result.verdict.turn is None else str(result.verdict.turn)


def _mark(result: CaseResult, summary: Summary) -> str:
    if result.verdict.outcome is None:
        return f"ERROR {result.verdict.error}"[:60]
    if result in summary.false_ends:
        return "FALSE END"
    if result in summary.late:
        return f"LATE (by turn {result.case.by})"
    return "ok" if result.passed else "wrong"


def headline(summary: Summary, max_rate: float) -> list[str]:
    """The figures that matter, one per line."""
    benign = len(summary.judged(Expected.CONTINUE, Expected.WARN))
    ends = len(summary.judged(Expected.END))
    crisis, user_end = summary.handled(Expected.CRISIS), summary.handled(Expected.USER_END)
    verdict = "pass" if summary.gate(max_rate) else "FAIL"
    usage = summary.usage
    lines = [
        f"{len(summary.results)} cases, {sum(r.passed for r in summary.results)} as expected, "
        f"{len(summary.errors)} could not be judged",
        f"false ends: {len(summary.false_ends)} of {benign} ({percent(summary.false_end_rate)}); "
        f"allowed {percent(max_rate)}: {verdict}",
        f"missed ends: {len(summary.missed_ends)} of {ends} ({percent(summary.missed_end_rate)})",
        f"crisis handled: {crisis[0]} of {crisis[1]}; user ends honoured: "
        f"{user_end[0]} of {user_end[1]}",
        f"too late: {len(summary.late)}; end proposed for someone who never asked: "
        f"{len(summary.unasked_proposals)}",
        f"tokens: input {usage.input_tokens:,}, output {usage.output_tokens:,}, cache read "
        f"{usage.cache_read_tokens:,}, cache write {usage.cache_write_tokens:,}",
        f"estimated cost: {dollars(summary.cost)}{_price_note(summary)}",
    ]
    return lines


def _price_note(summary: Summary) -> str:
    price = summary.price
    if price is None:
        return ""
    return (
        f" (an estimate: {summary.info.model} at ${price.input:g} in / ${price.output:g} out / "
        f"${price.cache_write:g} cache write / ${price.cache_read:g} cache read per million "
        f"tokens, {price.source})"
    )


def terminal(summary: Summary, max_rate: float) -> str:
    width = max([4, *(len(r.case.id) for r in summary.results)])
    rows = [f"{'CASE':<{width}}  {'EXPECTED':<9} {'GOT':<9} {'TURN':>4} {'REDIR':>5}  RESULT"]
    for r in summary.results:
        rows.append(
            f"{r.case.id:<{width}}  {r.case.expect.value:<9} {summary.got(r):<9} "
            f"{_turn(r):>4} {r.verdict.redirects:>5}  {_mark(r, summary)}"
        )
    rows += [
        "",
        *headline(summary, max_rate),
        "",
        "expected \\ got  " + " ".join(f"{c:>9}" for c in COLUMNS),
    ]
    for expect in Expected:
        counts = [summary.confusion[(expect.value, c)] for c in COLUMNS]
        rows.append(f"{expect.value:<15} " + " ".join(f"{n:>9}" for n in counts))
    return "\n".join(rows)


def markdown(summary: Summary, max_rate: float) -> str:
    info = summary.info
    lines = [
        "# quitbot eval",
        "",
        f"Model `{info.model}`; warning after {info.redirects_before_warning} redirects, end "
        f"allowed after {info.redirects_before_end}"
        + (f"; community `{info.community}`" if info.community else "")
        + f"; {info.seconds:.1f} s at concurrency {info.concurrency}.",
        "",
        *(f"- {line}" for line in headline(summary, max_rate)),
        "",
        "## Confusion table (rows: expected, columns: what happened)",
        "",
        "| expected | " + " | ".join(COLUMNS) + " |",
        "| --- | " + " | ".join("---:" for _ in COLUMNS) + " |",
    ]
    for expect in Expected:
        counts = [str(summary.confusion[(expect.value, c)]) for c in COLUMNS]
        lines.append(f"| {expect.value} | " + " | ".join(counts) + " |")
    lines += [
        "",
        "## Cases",
        "",
        "| case | category | expected | got | turn | redirects | result | rationale |",
        "| --- | --- | --- | --- | ---: | ---: | --- | --- |",
    ]
    for r in summary.results:
        cells = [
            f"`{r.case.id}`",
            r.case.category,
            r.case.expect.value,
            summary.got(r),
            _turn(r),
            str(r.verdict.redirects),
            _mark(r, summary),
            r.case.rationale,
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def composition(cases: Sequence[Case]) -> str:
    """A cases file at a glance, as Markdown: cases per category and expected outcome, and
    per language (the README's table of the starter set is this, and a test keeps it so)."""
    categories = list(dict.fromkeys(case.category for case in cases))
    outcomes = [e.value for e in Expected]
    counts = Counter((case.category, case.expect.value) for case in cases)
    lines = [
        "| category | " + " | ".join(outcomes) + " | cases |",
        "| --- | " + " | ".join("---:" for _ in outcomes) + " | ---: |",
    ]
    for category in [*categories, "all"]:
        row = [
            sum(n for (c, o), n in counts.items() if o == outcome and category in (c, "all"))
            for outcome in outcomes
        ]
        lines.append(f"| {category} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    languages = Counter(case.lang for case in cases)
    shown = ", ".join(f"{lang} {n}" for lang, n in languages.most_common())
    lines += ["", f"Languages: {shown}. Shared places: {sum(c.shared for c in cases)} cases."]
    return "\n".join(lines)

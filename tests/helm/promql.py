"""Parses PromQL expressions (the chart's alert rules and dashboard queries) with a real PromQL
parser and says what each reads. Driven by tests/it/helm.rs, which checks the series against the
ones keygate exports.

Reads a JSON array of expressions on stdin and prints a JSON array, one object per expression:
{"error": "..."} when it does not parse, else {"selectors": [{"name", "labels"}], "grouping": [...]}
with every series selector (metric name and the labels it matches on) and every label named in
by/without/on/ignoring/group_left/group_right. Exit status 3 means the parser is missing.
"""

import json
import sys

try:
    import promql_parser
except ImportError as missing:
    print(f"{missing}: run the tests with scripts/test, which installs promql-parser into .tools/venv",
          file=sys.stderr)
    sys.exit(3)


def describe(text):
    try:
        expr = promql_parser.parse(text)
    except Exception as err:  # the parser raises a bare ValueError-like error with the position
        return {"error": str(err)}
    selectors, grouping = [], []

    def visit(node):
        kind = type(node).__name__
        if kind == "VectorSelector":
            matchers = node.matchers.matchers
            name = node.name or next((m.value for m in matchers if m.name == "__name__"), None)
            selectors.append({"name": name, "labels": [m.name for m in matchers if m.name != "__name__"]})
        elif kind == "AggregateExpr" and node.modifier is not None:
            grouping.extend(node.modifier.labels)
        elif kind == "BinaryExpr" and node.modifier is not None:
            if node.modifier.matching is not None:
                grouping.extend(node.modifier.matching.labels)
            grouping.extend(node.modifier.group_labels or [])
        return True

    promql_parser.walk(expr, visit)
    return {"selectors": selectors, "grouping": grouping}


def main():
    print(json.dumps([describe(text) for text in json.load(sys.stdin)]))


if __name__ == "__main__":
    main()

"""Renders helm/keygate the way `helm lint` and `helm template` would, offline, and validates every
manifest against the Kubernetes schemas. Driven by tests/it/helm.rs, which checks what matters.

Reads {"chart", "values", "kube_versions", "release", "namespace"} as JSON on stdin and prints one
JSON object: {"ok": true, "lint": [...], "resources": [{"template", "object"}], "notes"} or
{"ok": false, "stage": "schema" | "render" | "lint" | "kubernetes", "error": "..."}.
Exit status 3 means the tools are missing; anything else unexpected is a crash (traceback).
"""

import json
import sys

try:
    import helm_python as helm
    import kubernetes_validate
    import yaml
except ImportError as missing:
    print(f"{missing}: run the tests with scripts/test, which installs helm-python-sdk and "
          "kubernetes-validate into .tools/venv", file=sys.stderr)
    sys.exit(3)

# Custom resources whose schemas kubernetes-validate does not ship; these alone may go unvalidated.
UNVALIDATED_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor")}
LINT_WARNING = 2


def fail(stage, error):
    print(json.dumps({"ok": False, "stage": stage, "error": str(error)}))
    sys.exit(0)


def main():
    request = json.load(sys.stdin)
    values = request["values"]
    with helm.Chart.load(request["chart"]) as chart:
        # Render checks the schema too; checked alone first so that the two failures are told apart.
        try:
            chart.validate_schema(values)
        except helm.HelmError as err:
            fail("schema", err)
        try:
            rendered = chart.render(values, name=request["release"], namespace=request["namespace"],
                                    is_install=True)
        except helm.HelmError as err:
            fail("render", err)

    # Strict: warnings count as failures, as `helm lint --strict` would have them.
    report = helm.lint(request["chart"], values, strict=True, namespace=request["namespace"],
                       kube_version=request["kube_versions"][-1])
    findings = [m for m in report.get("messages") or [] if m["severity"] >= LINT_WARNING]
    if findings or report.get("errors"):
        fail("lint", json.dumps({"findings": findings, "errors": report.get("errors")}))

    resources, notes = [], ""
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for obj in yaml.safe_load_all(text):
            if not obj:
                continue
            kind = (obj.get("apiVersion"), obj.get("kind"))
            if kind not in UNVALIDATED_KINDS:
                for version in request["kube_versions"]:
                    validate(template, obj, version)
            resources.append({"template": template, "object": obj})
    print(json.dumps({"ok": True, "lint": report.get("messages") or [], "resources": resources, "notes": notes}))


def validate(template, obj, version):
    """Strict validation: unknown fields fail too; a kind without a schema is an error."""
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as err:
        path = ".".join(str(p) for p in err.path)
        fail("kubernetes", f"{template}: {obj['kind']}/{obj['metadata']['name']} (Kubernetes {version}): "
                           f"{path}: {err.message}")
    except kubernetes_validate.SchemaNotFoundError as err:
        fail("kubernetes", f"{template}: {err.message}")


if __name__ == "__main__":
    main()

"""Renders helm/keygate the way `helm lint` and `helm template` would, offline, and validates every
manifest against the Kubernetes schemas. Driven by tests/it/helm.rs, which checks what matters.

Reads {"chart", "values", "kube_versions", "release", "namespace"} as JSON on stdin and prints one
JSON object: {"ok": true, "lint": [...], "resources": [{"template", "object"}], "notes"} or
{"ok": false, "stage": "schema" | "render" | "lint" | "kubernetes", "error": "..."}. With
{"chart", "check_values": [values, ...]} instead, only the schema is checked, for each set of values:
{"ok": true, "schema": [null or the error, ...]}.
Exit status 3 means the tools are missing; anything else unexpected is a crash (traceback).
"""

import json
import pathlib
import sys

try:
    import helm_python as helm
    import jsonschema
    import kubernetes_validate
    import yaml
except ImportError as missing:
    print(f"{missing}: run the tests with scripts/test, which installs helm-python-sdk and "
          "kubernetes-validate into .tools/venv", file=sys.stderr)
    sys.exit(3)

# Custom resources whose schemas kubernetes-validate does not ship; these alone may go unvalidated.
UNVALIDATED_KINDS = set()
LINT_WARNING = 2
# The custom resources the chart renders, validated against their CRDs' own openAPIV3Schema, taken
# from the projects' tagged releases (each file's "source"): crds/GROUP_VERSION_KIND.json.
CRDS = pathlib.Path(__file__).with_name("crds")


def crd_schemas():
    schemas = {}
    for path in sorted(CRDS.glob("*.json")):
        crd = json.loads(path.read_text())
        schemas[(crd["apiVersion"], crd["kind"])] = strict(crd["schema"])
    return schemas


def strict(schema):
    """As kubernetes-validate's strict mode: an object that lists its properties has no others
    (the API server would prune them, so a typo there is silently lost), unless the CRD keeps
    unknown fields. CEL rules (x-kubernetes-validations) are not evaluated."""
    if isinstance(schema, dict):
        schema = {key: strict(value) for key, value in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [strict(item) for item in schema]
    return schema


def fail(stage, error):
    print(json.dumps({"ok": False, "stage": stage, "error": str(error)}))
    sys.exit(0)


def main():
    request = json.load(sys.stdin)
    if "check_values" in request:
        check_values(request)
        return
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
    custom = crd_schemas()
    for template, text in sorted(rendered.items()):
        if template.endswith("NOTES.txt"):
            notes = text
            continue
        for obj in yaml.safe_load_all(text):
            if not obj:
                continue
            kind = (obj.get("apiVersion"), obj.get("kind"))
            if kind in custom:
                validate_custom(template, obj, custom[kind])
            elif kind not in UNVALIDATED_KINDS:
                for version in request["kube_versions"]:
                    validate(template, obj, version)
            resources.append({"template": template, "object": obj})
    print(json.dumps({"ok": True, "lint": report.get("messages") or [], "resources": resources, "notes": notes}))


def check_values(request):
    """Only the chart's schema, for many sets of values: {"ok": true, "schema": [null or the error]}."""
    answers = []
    with helm.Chart.load(request["chart"]) as chart:
        for values in request["check_values"]:
            try:
                chart.validate_schema(values)
                answers.append(None)
            except helm.HelmError as err:
                answers.append(str(err))
    print(json.dumps({"ok": True, "schema": answers}))


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


def validate_custom(template, obj, schema):
    """A custom resource against its CRD's schema (the metadata as any object's)."""
    error = jsonschema.exceptions.best_match(jsonschema.Draft7Validator(schema).iter_errors(obj))
    if error is not None:
        path = ".".join(str(p) for p in error.absolute_path)
        fail("kubernetes", f"{template}: {obj['kind']}/{obj['metadata']['name']} (its CRD): {path}: {error.message}")


if __name__ == "__main__":
    main()

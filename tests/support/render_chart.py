"""Render a drover-exported Helm chart's templates with its values.yaml, without helm.

drover's chart templates use exactly one Go-template form, `{{ index .Values "k" ... }}`
optionally followed by `| quote`; this applies it with Helm's semantics (quote = a
double-quoted string) and fails on any other template action, so an unsupported construct
cannot slip through. Usage: render_chart.py CHART_DIR OUT_DIR
"""
import json
import pathlib
import re
import sys

import yaml  # PyYAML, installed with cfn-lint / kubernetes-validate

chart, out = (pathlib.Path(a) for a in sys.argv[1:3])
values = yaml.safe_load((chart / "values.yaml").read_text())
ACTION = re.compile(r'\{\{\s*index \.Values((?:\s+"(?:[^"\\]|\\.)*")+)\s*(\|\s*quote\s*)?\}\}')
KEY = re.compile(r'"(?:[^"\\]|\\.)*"')


def apply(m):
    keys = [json.loads(k) for k in KEY.findall(m.group(1))]
    v = values
    for k in keys:
        if not isinstance(v, dict) or k not in v:
            sys.exit(f"values.yaml has no {'.'.join(keys)}")
        v = v[k]
    if m.group(2):
        return json.dumps(str(v), ensure_ascii=False)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        sys.exit(f"{'.'.join(keys)} is used without quote but is not a number: {v!r}")
    return str(v)


out.mkdir(parents=True, exist_ok=True)
for t in sorted((chart / "templates").glob("*.yaml")):
    raw = t.read_text()
    rest = ACTION.sub("", raw)
    if "{{" in rest or "}}" in rest:
        sys.exit(f"{t}: a template action drover's renderer does not support is left")
    text = ACTION.sub(apply, raw)
    (out / t.name).write_text(text)

"""The consent service's HTML: Jinja2 templates with autoescaping, and one style sheet.

Every value a page shows (tool names, arguments, subjects) came from an agent or a resource
and is escaped by Jinja2's autoescape; no page carries inline script or style (the content
security policy allows neither).
"""

from __future__ import annotations

from typing import Any

from jinja2 import DictLoader, Environment, select_autoescape

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; color: #1b1b1f;
  padding: 0 1rem; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 1.5rem; }
.card { border: 1px solid #c9c9d0; border-radius: .5rem; padding: 1rem 1.25rem; margin: 1rem 0; }
dl { display: grid; grid-template-columns: 11rem 1fr; gap: .35rem 1rem; margin: 0; }
dt { font-weight: 600; } dd { margin: 0; overflow-wrap: anywhere; }
pre { background: #f4f4f7; padding: .6rem; border-radius: .3rem; overflow-x: auto; }
fieldset { border: 1px solid #d8d8de; border-radius: .4rem; margin: .8rem 0; }
label { display: block; margin: .3rem 0; }
button { font-size: 1rem; padding: .45rem 1.1rem; border-radius: .35rem; border: 1px solid #777;
  cursor: pointer; margin-right: .6rem; }
button.approve { background: #1f6f3f; color: white; border-color: #1f6f3f; }
button.refuse { background: #fff; color: #8a1c1c; border-color: #8a1c1c; }
table { border-collapse: collapse; width: 100%; font-size: .92rem; }
th, td { border-bottom: 1px solid #ddd; text-align: left; padding: .35rem .4rem;
  vertical-align: top; }
.muted { color: #5d5d66; } .error { color: #8a1c1c; font-weight: 600; }
body:has(#review) { max-width: none; }
.who { float: right; font-size: .9rem; color: #5d5d66; }
"""

_LAYOUT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · Remit consent</title>
<link rel="stylesheet" href="/static/consent.css"></head>
<body>
{% if login %}<div class="who">Signed in as <strong>{{ login.subject }}</strong>
 · <a href="/grants">My grants</a></div>{% endif %}
<h1>{{ title }}</h1>
{% block body %}{% endblock %}
</body></html>"""

_CONSENT = """{% extends "layout.html" %}{% block body %}
<p>An AI agent asks to act on your behalf. Nothing happens unless you approve.</p>
<div class="card"><dl>
<dt>Agent</dt><dd id="agent">{{ request.agent }}</dd>
<dt>Wants to use tool</dt><dd id="tool"><strong>{{ request.tool }}</strong></dd>
<dt>On server</dt><dd>{{ request.server }}</dd>
<dt>For</dt><dd>{{ request.subject }} <span class="muted">({{ request.issuer }})</span></dd>
<dt>Tool definition</dt><dd class="muted">{{ request.tool_hash or "not pinned" }}</dd>
<dt>Policy rule</dt><dd>{{ request.rule }}{% if request.rule_when %}
 <span class="muted">when {{ request.rule_when }}</span>{% endif %}</dd>
<dt>Arguments</dt><dd>{% if request.shown is not none %}<pre id="arguments">{{ arguments }}</pre>
{% else %}<span class="muted">not shown by this server's audit policy; sha256
 {{ request.digest }}</span>{% endif %}</dd>
<dt>Request expires</dt><dd>{{ expires }}</dd>
</dl></div>
<form method="post" action="/consent/answer">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="r" value="{{ token }}">
<fieldset><legend>What may the agent do?</legend>
{% for scope in scopes %}<label><input type="radio" name="scope" value="{{ scope }}"
 {% if loop.first %}checked{% endif %}> {{ scope_labels[scope] }}</label>{% endfor %}
{% if request.fields %}<div class="muted">Arguments to fix (with “the arguments I tick”):</div>
{% for name in request.fields %}<label><input type="checkbox" name="fields" value="{{ name }}">
 {{ name }} = {{ shown_values[name] }}</label>{% endfor %}{% endif %}
</fieldset>
<fieldset><legend>For how long?</legend>
<select name="duration" id="duration">{% for seconds, label in durations %}
<option value="{{ seconds }}">{{ label }}</option>{% endfor %}</select>
<span class="muted">at most {{ max_label }} under this rule</span>
</fieldset>
<button class="approve" type="submit" name="answer" value="approve" id="approve">Approve</button>
<button class="refuse" type="submit" name="answer" value="refuse" id="refuse">Refuse</button>
</form>{% endblock %}"""

_MESSAGE = """{% extends "layout.html" %}{% block body %}
<p id="message" class="{{ kind }}">{{ message }}</p>
{% if detail %}<p class="muted">{{ detail }}</p>{% endif %}
{% endblock %}"""

_GRANTS = """{% extends "layout.html" %}{% block body %}
{% if notice %}<p id="notice">{{ notice }}</p>{% endif %}
<p>Consent you gave to agents. Revoking keeps the grant as evidence and stops the agent within
seconds.</p>
<table id="grants"><thead><tr><th>Agent</th><th>Server</th><th>Tools</th><th>Scope</th>
<th>Expires</th><th>Last use</th><th>State</th><th></th></tr></thead><tbody>
{% for row in rows %}<tr data-grant="{{ row.name }}">
<td>{{ row.agent }}</td><td>{{ row.server }}</td><td>{{ row.tools }}</td>
<td>{{ row.scope }}</td><td>{{ row.expires }}</td><td class="used">{{ row.used }}</td>
<td class="state">{{ row.phase }}</td>
<td>{% if row.phase == "Active" %}<form method="post" action="/grants/revoke">
<input type="hidden" name="csrf" value="{{ csrf }}">
<input type="hidden" name="namespace" value="{{ row.namespace }}">
<input type="hidden" name="name" value="{{ row.name }}">
<button class="refuse" type="submit">Revoke</button></form>{% endif %}</td></tr>
{% else %}<tr><td colspan="7" class="muted">No grants.</td></tr>{% endfor %}
</tbody></table>{% endblock %}"""

_REVIEW = """{% extends "layout.html" %}{% block body %}
<p>Who may act for whom, by which rules, under which active grants.</p>
<table id="review"><thead><tr>{% for c in columns %}<th>{{ c }}</th>{% endfor %}</tr></thead>
<tbody>{% for row in rows %}<tr>{% for c in columns %}<td>{{ row[c] }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>{% endblock %}"""

_ENV = Environment(
    loader=DictLoader(
        {
            "layout.html": _LAYOUT,
            "consent.html": _CONSENT,
            "message.html": _MESSAGE,
            "grants.html": _GRANTS,
            "review.html": _REVIEW,
        }
    ),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


def render(template: str, **values: Any) -> str:
    """One page, every value escaped."""
    return _ENV.get_template(template).render(**values)


__all__ = ["STYLE", "render"]

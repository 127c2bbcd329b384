"""``/api/docs``: the API reference, rendered on the server from the OpenAPI document.

FastAPI's default Swagger UI loads its scripts from a CDN and starts with an inline script;
the office's network may not reach the CDN and our CSP forbids inline scripts, so the
reference is plain HTML instead (the machine-readable spec stays at ``/api/openapi.json``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from mailer.web.pages import render

METHOD_ORDER = ("get", "post", "put", "patch", "delete")


def install(app: FastAPI) -> None:
    """Serve the reference at /api/docs (the app must be created with ``docs_url=None``)."""

    @app.get("/api/docs", include_in_schema=False)
    def api_docs(request: Request) -> Response:
        spec = request.app.openapi()
        return render(request, "apidocs.html", {"operations": operations(spec),
                                                "spec_url": request.app.openapi_url})


def operations(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every operation of the spec as template data, in path order."""
    schemas = spec.get("components", {}).get("schemas", {})
    found = []
    for path, methods in sorted(spec.get("paths", {}).items()):
        for method in METHOD_ORDER:
            op = methods.get(method)
            if op is None:
                continue
            found.append({
                "method": method.upper(), "path": path, "summary": op.get("summary", ""),
                "description": (op.get("description") or "").strip(),
                "parameters": [_parameter(p) for p in op.get("parameters", [])],
                "body": _body(op, schemas),
                "answers": _answers(op),
                "secured": bool(op.get("security")),
            })
    return found


def _parameter(param: dict[str, Any]) -> dict[str, Any]:
    schema = param.get("schema", {})
    return {"name": param["name"], "in": param.get("in", ""),
            "required": param.get("required", False), "type": _type(schema)}


def _body(op: dict[str, Any], schemas: dict[str, Any]) -> list[dict[str, Any]]:
    content = op.get("requestBody", {}).get("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    model = schemas.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
    required = set(model.get("required", []))
    return [{"name": name, "type": _type(prop), "required": name in required,
             "description": prop.get("description", "")}
            for name, prop in model.get("properties", {}).items()]


def _answers(op: dict[str, Any]) -> list[dict[str, str]]:
    """Each status the operation answers, with what it means and the body's shape."""
    found = []
    for status, answer in sorted(op.get("responses", {}).items()):
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        found.append({"status": status, "meaning": answer.get("description", ""),
                      "body": _shape(schema)})
    return found


def _shape(schema: dict[str, Any]) -> str:
    """A body schema's name (``ReleaseOut``, ``list of ReleaseOut``), or its type."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"list of {_shape(schema.get('items', {}))}"
    return _type(schema) if schema else ""


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return " | ".join(_type(s) for s in schema["anyOf"])
    if schema.get("type") == "array":
        return f"list of {_type(schema.get('items', {}))}"
    return schema.get("format") or schema.get("type") or "object"
